"""Many observations added to a prometheus_client histogram at once.

``Histogram.observe`` takes a lock and searches the buckets for every value; at tens of
thousands of records a second that is a measurable share of the worker's time
(docs/performance.md). The caller counts the values per bucket itself and adds each count
once. tests/stream/observability/test_metrics_bulk.py compares this with ``observe``.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Histogram


def bucket_bounds(histogram: Histogram) -> list[float]:
    """The buckets' upper bounds (inclusive), ascending, the last ``+Inf``."""
    bounds: list[float] = histogram._upper_bounds
    return bounds


def add_observations(histogram: Histogram, per_bucket: Sequence[float], total: float) -> None:
    """Add ``per_bucket[i]`` values to bucket ``i`` (each value counted in its own bucket
    only, as ``observe`` does) and ``total`` to the sum."""
    # A histogram with labels is observed through a child, as ``observe`` insists.
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]
    buckets = histogram._buckets
    for i, n in enumerate(per_bucket):
        if n:
            buckets[i].inc(n)
    histogram._sum.inc(total)
