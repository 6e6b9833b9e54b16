"""Bulk histogram updates give exactly what one observation at a time (prometheus_client's own
``Histogram.observe``) gives: ``observe_ages`` and the seam it writes through
(stream/runtime/seam/histogram.py)."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from stream.observability.buckets import DELAY_BUCKETS
from stream.observability.metrics import observe_ages
from stream.runtime.seam.histogram import add_observations, bucket_bounds

NOW = 1_795_791_845.25


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("delay_seconds", "d", buckets=DELAY_BUCKETS, registry=registry)


def _observed(histogram: Histogram) -> tuple[list[float], float]:
    """Each bucket's own count (not cumulative, unlike the exposition) and the sum."""
    samples = histogram.collect()[0].samples
    cumulative = [s.value for s in samples if s.name.endswith("_bucket")]
    counts = [b - a for a, b in zip([0.0, *cumulative], cumulative, strict=False)]
    [total] = [s.value for s in samples if s.name.endswith("_sum")]
    return counts, total


def test_observe_ages_equals_observing_each_age() -> None:
    rng = random.Random(3)
    # Ages between, below and above the bucket bounds, and negative ones (clock skew: a
    # timestamp ahead of now), in no particular order.
    ages = [-0.5, 0.0, 1e9] + [rng.uniform(-1, 400) for _ in range(5000)]
    ages += [rng.uniform(0, 0.2) for _ in range(5000)]
    rng.shuffle(ages)
    timestamps = [NOW - age for age in ages]
    single, bulk = _histogram(CollectorRegistry()), _histogram(CollectorRegistry())
    for t in timestamps:
        single.observe(max(0.0, NOW - t))
    observe_ages(bulk, NOW, timestamps)
    (single_counts, single_sum), (bulk_counts, bulk_sum) = _observed(single), _observed(bulk)
    assert bulk_counts == single_counts
    assert bulk_sum == pytest.approx(single_sum, rel=1e-12)


def test_an_age_on_a_bound_counts_in_that_bounds_bucket() -> None:
    """``le`` is inclusive: a record exactly ``bound`` seconds old is within ``bound``."""
    bounds = [b for b in DELAY_BUCKETS if b != float("inf")]
    histogram = _histogram(CollectorRegistry())
    observe_ages(histogram, NOW, [NOW - bound for bound in bounds])
    counts, _ = _observed(histogram)
    assert counts == [1.0] * len(bounds) + [0.0]


def test_observe_ages_of_nothing_changes_nothing() -> None:
    registry = CollectorRegistry()
    histogram = _histogram(registry)
    before = generate_latest(registry)
    observe_ages(histogram, NOW, [])
    assert generate_latest(registry) == before


def test_added_observations_equal_observing_each_value() -> None:
    rng = random.Random(7)
    single, bulk = _histogram(CollectorRegistry()), _histogram(CollectorRegistry())
    bounds = bucket_bounds(bulk)
    assert bounds == sorted({*DELAY_BUCKETS, float("inf")})
    per_bucket = [0] * len(bounds)
    values = [rng.uniform(0, 400) for _ in range(3000)] + [1e9]
    for value in values:
        single.observe(value)
        per_bucket[next(i for i, bound in enumerate(bounds) if value <= bound)] += 1
    add_observations(bulk, per_bucket, math.fsum(values))
    (single_counts, single_sum), (bulk_counts, bulk_sum) = _observed(single), _observed(bulk)
    assert bulk_counts == single_counts
    assert bulk_sum == pytest.approx(single_sum, rel=1e-12)


def test_added_observations_need_a_child_as_observe_does() -> None:
    labelled = Histogram("d_seconds", "d", ["team"], registry=CollectorRegistry())
    with pytest.raises(ValueError) as by_observe:
        labelled.observe(1.0)
    with pytest.raises(ValueError) as by_seam:
        add_observations(labelled, [1] + [0] * (len(bucket_bounds(labelled)) - 1), 1.0)
    assert str(by_seam.value) == str(by_observe.value)
