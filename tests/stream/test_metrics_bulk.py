"""Bulk histogram updates give exactly what one observation at a time gives."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from stream.metrics import DELAY_BUCKETS, observe_many


def _histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("delay_seconds", "d", buckets=DELAY_BUCKETS, registry=registry)


def test_observe_many_equals_observing_each_value() -> None:
    rng = random.Random(3)
    # Values on, between, below and above the bucket bounds, and negatives (clock skew).
    values = [*DELAY_BUCKETS, -0.5, 0.0, 1e9] + [rng.uniform(-1, 400) for _ in range(5000)]
    one, many = CollectorRegistry(), CollectorRegistry()
    single = _histogram(one)
    for v in values:
        single.observe(max(0.0, v))
    observe_many(_histogram(many), values)
    assert generate_latest(many) == generate_latest(one)


def test_observe_many_of_nothing_changes_nothing() -> None:
    registry = CollectorRegistry()
    histogram = _histogram(registry)
    before = generate_latest(registry)
    observe_many(histogram, [])
    assert generate_latest(registry) == before
