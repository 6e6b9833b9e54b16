"""Which visits a report counts: the worker's duplicate detection, holding only recent visitors.

``Funnel._apply_visit`` keeps a ``VisitorState`` per visitor for ever (in the worker, in its
table). A report reads a month of visits at once, so ``RecentVisits`` decides the same thing,
"applied" or "duplicate", from a compact copy of the part of those states that can still
decide something, and drops a visitor once every visit it holds is older than the duplicate
horizon of its partition (the argument is in docs/reports.md, "Memory").

Per partition, the states are kept in *generations*: one dict per ``1/GENERATIONS`` of the
horizon of partition event time (the watermark when a state last changed). Every time a
state holds is at most the watermark when it changed, so a whole generation can be dropped
once the end of its span is more than the horizon behind the watermark. A visitor with one
visit kept (most of them) is stored as 16 packed bytes; one with more as a ``_Visits``.

Visitors and event ids are kept as their 64-bit hashes (``hash``): two visits of one visitor
are taken for the same when their ids' hashes are equal, which (like the worker's 64-bit
digests, docs/semantics.md) happens with probability 2**-64 per pair.
"""

from __future__ import annotations

import math
import struct

from stream.core.bounds import MAX_VISIT_IDS

__all__ = ["GENERATIONS", "RecentVisits"]

GENERATIONS = 8  # generations per horizon: a visitor is held at most 1/8 of it too long

_SINGLE = struct.Struct("<qd")  # (hash of the event id, time): a visitor with one visit kept


class _Visits:
    """A visitor's visits within the horizon (more than one): id hash -> time, as applied."""

    __slots__ = ("oldest", "visits")

    def __init__(self, visits: dict[int, float]) -> None:
        self.visits = visits
        self.oldest = min(visits.values())

    def add(self, key: int, t: float, horizon_start: float, max_ids: int) -> None:
        """``VisitorState.add_visit``: record the visit, forget those before the horizon,
        then (past ``max_ids``) the ones applied longest ago."""
        visits = self.visits
        visits[key] = t
        if t < self.oldest:
            self.oldest = t
        if self.oldest < horizon_start:
            for old in [k for k, at in visits.items() if at < horizon_start]:
                del visits[old]
            self.oldest = min(visits.values(), default=math.inf)
        for _ in range(len(visits) - max_ids):
            del visits[next(iter(visits))]


_State = bytes | _Visits


class _Partition:
    """The visitor states of one partition, by generation, and its watermark."""

    __slots__ = ("generations", "newest", "watermark")

    def __init__(self) -> None:
        self.watermark = 0.0
        self.newest = -math.inf  # the index of the newest generation
        self.generations: list[tuple[float, dict[int, _State]]] = []


class RecentVisits:
    """``add`` says whether a visit is applied or a duplicate, as ``Funnel.apply`` would on
    the same visits in the same order; states past the horizon are dropped as it goes."""

    def __init__(self, horizon: float, *, max_ids: int = MAX_VISIT_IDS) -> None:
        self.horizon = horizon
        self.max_ids = max_ids
        self._span = horizon / GENERATIONS
        self._partitions: dict[int, _Partition] = {}
        self.held_most = 0  # the most visitor states held at once, checked per generation

    @property
    def held(self) -> int:
        """Visitor states held now."""
        return sum(len(g) for p in self._partitions.values() for _, g in p.generations)

    @property
    def watermark(self) -> float:
        """The latest visit time applied, over every partition (0 before any)."""
        return max((p.watermark for p in self._partitions.values()), default=0.0)

    def add(self, partition: int, visitor_id: str, event_id: str, t: float) -> bool:
        """True if the visit is applied (new), False if it is a duplicate."""
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition()
        vkey, key = hash(visitor_id), hash(event_id)
        state: _State | None = None
        generations = part.generations
        for i in range(len(generations) - 1, -1, -1):
            held = generations[i][1]
            state = held.get(vkey)
            if state is not None:
                if _holds(state, key):
                    return False
                del held[vkey]  # moved to the newest generation below
                break
        if t > part.watermark:
            part.watermark = t
            if t >= part.newest + self._span:
                self._new_generation(part, t)
        if not part.generations:  # times before 1970: nothing moved the watermark yet
            part.generations.append((part.newest, {}))
        newest = part.generations[-1][1]
        horizon_start = part.watermark - self.horizon
        if state is None:
            if t >= horizon_start:
                newest[vkey] = _SINGLE.pack(key, t)
            return True
        if isinstance(state, bytes):
            first, at = _SINGLE.unpack(state)
            state = _Visits({first: at})
        state.add(key, t, horizon_start, self.max_ids)
        kept = state.visits
        if len(kept) == 1:
            newest[vkey] = _SINGLE.pack(*next(iter(kept.items())))
        elif kept:
            newest[vkey] = state
        return True

    def _new_generation(self, part: _Partition, watermark: float) -> None:
        """Start the generation of ``watermark``; drop those wholly past the horizon."""
        span = self._span
        part.newest = math.floor(watermark / span) * span
        self.held_most = max(self.held_most, self.held)
        # A generation started at s holds times before s + span: all forgettable once
        # s + span is before the horizon's start.
        horizon_start = watermark - self.horizon
        part.generations = [(s, g) for s, g in part.generations if s + span >= horizon_start]
        part.generations.append((part.newest, {}))


def _holds(state: _State, key: int) -> bool:
    if isinstance(state, bytes):
        held: int = _SINGLE.unpack(state)[0]
        return held == key
    return key in state.visits
