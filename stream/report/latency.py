"""Percentiles of latencies as a report shows them: nearest rank, in seconds (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Latency:
    """Nearest-rank percentiles of latencies in seconds (None without any)."""

    p50: float | None
    p90: float | None
    p95: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Latency:
        """The percentiles of ``values``: the smallest value with at least q of them ≤ it."""
        ordered = sorted(values)

        def rank(q: float) -> float | None:
            return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else None

        return cls(rank(0.5), rank(0.9), rank(0.95))
