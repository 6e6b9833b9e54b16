"""``python -m bench.delayworker PATH``: ``funnel worker`` that also keeps every record's delay.

Benchmark only (the latency phase, bench/latency.py). The worker records
``funnel_processing_delay_seconds`` through one function,
``stream.observability.metrics.observe_ages(histogram, now, timestamps)``; this wraps it so
that each age it observes (``now`` minus the record timestamp, 0 if negative, the very values
the histogram buckets) is also appended to ``PATH`` as a native float64, written unbuffered
once per fetch. Quantiles of those values are exact, where the contract histogram's buckets
(.025, .05, .1 s) only allow an interpolation. Nothing else changes: at 5,000 records/s the
wrapper's cost is a list of ages per fetch.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Iterable

from prometheus_client import Histogram

from stream.cli.commands import main as funnel_main
from stream.observability import metrics


def keep_delays(path: str) -> None:
    """Wrap ``observe_ages`` so that every age it observes is appended to ``path``."""
    out = open(path, "ab", buffering=0)  # noqa: SIM115 -- open for the life of the process
    observe = metrics.observe_ages

    def observe_and_keep(histogram: Histogram, now: float, timestamps: Iterable[float]) -> None:
        stamps = list(timestamps)
        array.array("d", [now - t if now > t else 0.0 for t in stamps]).tofile(out)
        observe(histogram, now, stamps)

    metrics.observe_ages = observe_and_keep


def main() -> int:
    """Keep the delays in the file named by the first argument, then run ``funnel worker``."""
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m bench.delayworker PATH\n")
        return 2
    keep_delays(sys.argv[1])
    return funnel_main(["worker"])


if __name__ == "__main__":
    raise SystemExit(main())
