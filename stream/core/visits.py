"""Per-visitor state: the visits applied recently, for duplicate detection and window counts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from stream.core.codec import decode_json, encode_json


@dataclass(slots=True)
class VisitorState:
    """Visits of one visitor within the duplicate horizon; the ``visitor_states`` table value."""

    partition: int
    visits: dict[str, float] = field(default_factory=dict)  # event_id -> occurred_at
    # At most the oldest time in ``visits``, once known (not stored): a visitor with
    # thousands of visits is not scanned for each new one.
    oldest: float | None = field(default=None, compare=False, repr=False)

    def encode(self) -> bytes:
        """Compact JSON for the state table."""
        return encode_json([self.partition, self.visits])

    @staticmethod
    def encode_first(partition: int, event_id: str, t: float, horizon_start: float) -> bytes:
        """``encode`` of a new visitor's state after its first visit (the hot path: most
        visits are a visitor's first), without building the state."""
        return encode_json([partition, {event_id: t} if t >= horizon_start else {}])

    @classmethod
    def decode(cls, raw: bytes) -> VisitorState:
        """Inverse of ``encode``."""
        partition, visits = decode_json(raw)
        return cls(partition, visits)

    @staticmethod
    def clock_facts(raw: bytes) -> tuple[int, float]:
        """(partition, latest visit time) of an encoded state, without building it."""
        partition, visits = decode_json(raw)
        return partition, max(visits.values(), default=0.0)

    def add_visit(self, event_id: str, t: float, horizon_start: float) -> None:
        """Record a new visit, then forget those before the duplicate horizon."""
        self.visits[event_id] = t
        if self.oldest is not None and t < self.oldest:
            self.oldest = t
        self.forget_before(horizon_start)

    def forget_before(self, horizon_start: float) -> None:
        """Drop visits older than the duplicate horizon, keeping the state bounded."""
        visits = self.visits
        oldest = self.oldest
        if oldest is None:
            oldest = min(visits.values(), default=math.inf)
        if oldest < horizon_start:
            for eid in [eid for eid, t in visits.items() if t < horizon_start]:
                del visits[eid]
            oldest = min(visits.values(), default=math.inf)
        self.oldest = oldest
