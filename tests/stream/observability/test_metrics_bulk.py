"""Bulk histogram updates give exactly what one observation at a time gives."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from stream.observability.buckets import DELAY_BUCKETS
from stream.observability.metrics import observe_ages

NOW = 1_795_791_845.25


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("delay_seconds", "d", buckets=DELAY_BUCKETS, registry=registry)


def _observed(histogram: Histogram) -> tuple[list[float], float]:
    counts = [bucket.get() for bucket in histogram._buckets]
    return counts, histogram._sum.get()


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
