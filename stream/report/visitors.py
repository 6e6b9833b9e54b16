"""Which visits a report counts: the worker's duplicate detection, holding only recent visitors.

``Funnel._apply_visit`` keeps a ``VisitorState`` per visitor for ever (in the worker, in its
table). A report reads a month of visits at once, so ``RecentVisits`` decides the same thing,
"applied" or "duplicate", from a compact copy of the part of those states that can still
decide something, and drops a visitor once every visit it holds is older than the duplicate
horizon of its partition (the argument is in docs/reports.md, "Memory and speed").

Per partition, the states are kept in *generations*, one per ``1/GENERATIONS`` of the
horizon of partition event time (the watermark when a state last changed). Every time a state
holds is at most the watermark when it changed, so a whole generation can be dropped once the
end of its span is more than the horizon behind the watermark. The open generation is a dict;
a closed one (no state is added to it any more) keeps its visitors in sorted arrays (32 bytes
for a visitor with one visit, most of them), behind one Bloom filter per partition that
answers "not held" at once for nearly every new visitor. A visitor's visits are packed records of
(id hash, time), a ``_Visits`` past ``PACKED_MOST`` of them (a bot).

Visitors and event ids are kept as their 64-bit hashes (``hash``): two visits of one visitor
are taken for the same when their ids' hashes are equal, which (like the worker's 64-bit
digests, docs/semantics.md) happens with probability 2**-64 per pair.
"""

from __future__ import annotations

import itertools
import math
import struct
from array import array
from bisect import bisect_left

from stream.core.bounds import MAX_VISIT_IDS, earliest

__all__ = ["GENERATIONS", "RecentVisits"]

GENERATIONS = 16  # generations per horizon: a visitor is held at most 1/16 of it too long

_SINGLE = struct.Struct("<qd")  # (hash of the event id, time) of one visit kept
PACKED_MOST = 32  # a visitor with at most this many visits kept is held as packed records


class _Visits:
    """A visitor's visits within the horizon (more than one): id hash -> time, as applied."""

    __slots__ = ("oldest", "visits")

    def __init__(self, visits: dict[int, float]) -> None:
        self.visits = visits
        self.oldest = earliest(visits)

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
            self.oldest = earliest(visits)
        for _ in range(len(visits) - max_ids):
            del visits[next(iter(visits))]


_State = bytes | _Visits


class _Closed:
    """A generation no visitor is added to any more, compact: its visitors' packed records
    end to end in one ``bytearray``, found by a sorted ``array`` of visitor hashes and one of
    where each visitor's records end (16 bytes a visit, 16 more a visitor); bots (``_Visits``)
    in a dict. A visitor taken out (it visited again) is marked with a NaN time."""

    __slots__ = ("data", "ends", "many", "start", "vkeys")

    def __init__(self, start: float, held: dict[int, _State]) -> None:
        self.start = start
        packed = sorted((v, s) for v, s in held.items() if isinstance(s, bytes))
        self.vkeys = array("q", [v for v, _ in packed])
        self.ends = array("q", itertools.accumulate(len(s) for _, s in packed))
        self.data = bytearray(b"".join(s for _, s in packed))
        self.many = {v: s for v, s in held.items() if isinstance(s, _Visits)}

    def __len__(self) -> int:
        return len(self.vkeys) + len(self.many)

    def find(self, vkey: int) -> tuple[_State, int] | None:
        """The visitor's state and where its records start (-1: in ``many``), None if not
        here."""
        state = self.many.get(vkey)
        if state is not None:
            return state, -1
        vkeys = self.vkeys
        i = bisect_left(vkeys, vkey)
        if i == len(vkeys) or vkeys[i] != vkey:
            return None
        start = self.ends[i - 1] if i else 0
        packed = bytes(self.data[start : self.ends[i]])
        if math.isnan(_SINGLE.unpack_from(packed)[1]):
            return None  # taken out
        return packed, start

    def take_out(self, vkey: int, where: int) -> None:
        if where < 0:
            del self.many[vkey]
        else:
            _SINGLE.pack_into(self.data, where, 0, math.nan)


class _Bloom:
    """Visitor hashes possibly in a partition's closed generations: most visits are a new
    visitor's, and this answers "not held" for nearly all of them at once."""

    __slots__ = ("bits", "size")

    def __init__(self, capacity: int) -> None:
        self.size = max(1024, 16 * capacity)  # bits: about 1.4 % false positives at capacity
        self.bits = bytearray(self.size // 8 + 1)

    def add(self, vkey: int) -> None:
        h, size, bits = vkey & _MASK, self.size, self.bits
        a, b = h % size, (h >> 32) % size
        bits[a >> 3] |= 1 << (a & 7)
        bits[b >> 3] |= 1 << (b & 7)


_MASK = (1 << 64) - 1


class _Partition:
    """The visitor states of one partition: the open generation (a dict), the closed ones
    (compact, oldest first) behind a Bloom filter, and its watermark."""

    __slots__ = ("added", "bloom", "closed", "newest", "open", "watermark")

    def __init__(self) -> None:
        self.watermark = 0.0
        self.newest = 0.0  # the start of the open generation
        self.open: dict[int, _State] = {}
        self.closed: list[_Closed] = []
        self.bloom = _Bloom(0)
        self.added = 0  # visitors added to the Bloom filter since it was built

    def held(self) -> int:
        return len(self.open) + sum(len(c) for c in self.closed)

    def find_closed(self, vkey: int) -> tuple[_State, _Closed, int] | None:
        """The visitor's state in a closed generation, the generation and where in it."""
        bloom = self.bloom  # most visitors are new: answered here, without a method call
        h, size, bits = vkey & _MASK, bloom.size, bloom.bits
        a = h % size
        if not bits[a >> 3] & (1 << (a & 7)):
            return None
        b = (h >> 32) % size
        if not bits[b >> 3] & (1 << (b & 7)):
            return None
        for closed in reversed(self.closed):
            found = closed.find(vkey)
            if found is not None:
                return found[0], closed, found[1]
        return None

    def close(self, start: float, horizon_start: float, span: float) -> None:
        """Close the open generation, open one at ``start``, and drop the closed generations
        wholly before ``horizon_start`` (a generation that opened at s holds times before
        s + span)."""
        if self.open:
            closed = _Closed(self.newest, self.open)
            self.closed.append(closed)
            for vkey in (*closed.vkeys, *closed.many):
                self.bloom.add(vkey)
            self.added += len(closed)
        self.closed = [c for c in self.closed if c.start + span >= horizon_start]
        live = sum(len(c) for c in self.closed)
        if self.added > 2 * live + 1024:  # mostly dropped visitors: build it again
            self.bloom = _Bloom(2 * live)
            for closed in self.closed:
                for vkey in (*closed.vkeys, *closed.many):
                    self.bloom.add(vkey)
            self.added = live
        elif self.added > self.bloom.size // 16:  # full: build it again, larger
            self.bloom = _Bloom(2 * self.added)
            for closed in self.closed:
                for vkey in (*closed.vkeys, *closed.many):
                    self.bloom.add(vkey)
        self.open = {}
        self.newest = start


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
        return sum(p.held() for p in self._partitions.values())

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
        state = part.open.get(vkey)
        if state is not None:
            if _holds(state, key):
                return False
            del part.open[vkey]
        elif part.closed and (found := part.find_closed(vkey)) is not None:
            state, closed, where = found
            if _holds(state, key):
                return False
            closed.take_out(vkey, where)
        if t > part.watermark:
            part.watermark = t
            if t >= part.newest + self._span:
                self.held_most = max(self.held_most, self.held)
                span = self._span
                part.close(math.floor(t / span) * span, t - self.horizon, span)
        horizon_start = part.watermark - self.horizon
        if state is None:
            if t >= horizon_start:
                part.open[vkey] = _SINGLE.pack(key, t)
            return True
        if isinstance(state, bytes):
            state = _Visits(dict(_SINGLE.iter_unpack(state)))
        state.add(key, t, horizon_start, self.max_ids)
        kept = state.visits
        if len(kept) <= PACKED_MOST:
            if kept:
                part.open[vkey] = b"".join([_SINGLE.pack(k, at) for k, at in kept.items()])
        else:
            part.open[vkey] = state
        return True


def _holds(state: _State, key: int) -> bool:
    if isinstance(state, bytes):
        if len(state) == _SINGLE.size:
            held: int = _SINGLE.unpack(state)[0]
            return held == key
        return any(k == key for k, _ in _SINGLE.iter_unpack(state))
    return key in state.visits
