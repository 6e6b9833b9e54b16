"""Leads ordered by a deadline, per team and owner: the stuck leads behind the gauges.

The gauges need counts only (``TimeHeap``); the list of stuck leads (``/leads?status=stuck``,
``funnel leads``) needs the ids of the leads soonest stuck, filtered by team and owner, in a
few milliseconds and without reading the state store. So each partition view keeps, per stage
with a limit and per (team, owner), a sorted list of one compact ``bytes`` entry per lead: its
deadline (when it gets stuck) as a big-endian IEEE 754 double (8 bytes, which sort as the
positive numbers they encode), then its id in UTF-8. A lead costs one small bytes object and a
pointer (about 70 bytes with a 20-character id); the rest of a listed lead is read from its
state. Open leads are kept alike, by clock start (``stream.core.openleads``).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sortedcontainers import SortedList

_DEADLINE = struct.Struct(">d")
TeamOwner = tuple[str, str | None]


def entry(deadline: float, lead_id: str) -> bytes:
    """The index entry of a lead: sorts by deadline, then by id."""
    return _DEADLINE.pack(deadline) + lead_id.encode()


def deadline_key(deadline: float) -> bytes:
    """The lowest entry possible at ``deadline``: entries at or after it sort after it."""
    return _DEADLINE.pack(deadline)


@dataclass(frozen=True, slots=True)
class IndexedLead:
    """One open lead as the index knows it."""

    deadline: float
    lead_id: str
    team: str
    owner: str | None
    clock_start: float | None = None  # open leads: when the follow-up clock started


@dataclass(slots=True)
class OpenLeadIndex:
    """Open leads per (team, owner), each group ordered by deadline then id."""

    _groups: dict[TeamOwner, SortedList] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._groups.values())

    def add(self, team: str, owner: str | None, deadline: float, lead_id: str) -> None:
        entries = self._groups.get((team, owner))
        if entries is None:
            entries = self._groups[(team, owner)] = SortedList()
        entries.add(entry(deadline, lead_id))

    def remove(self, team: str, owner: str | None, deadline: float, lead_id: str) -> None:
        """Remove a lead added with exactly these values (it must be present)."""
        key = (team, owner)
        entries = self._groups[key]
        entries.remove(entry(deadline, lead_id))
        if not entries:
            del self._groups[key]

    def from_deadline(
        self, start: float | None, team: str | None = None, owner: str | None = None
    ) -> Iterator[tuple[bytes, IndexedLead]]:
        """The leads of ``team`` and ``owner`` (any when None) whose deadline is ``start`` or
        later (all when None), soonest first, each with its entry (the sort key)."""
        low = None if start is None else deadline_key(start)
        streams = [
            _decoded(entries.irange(minimum=low), group)
            for group, entries in self._groups.items()
            if (team is None or group[0] == team) and (owner is None or group[1] == owner)
        ]
        return heapq.merge(*streams, key=_first)

    def groups(self) -> Iterable[TeamOwner]:
        return self._groups.keys()


def _first(item: tuple[bytes, IndexedLead]) -> bytes:
    return item[0]


def _decoded(entries: Iterable[bytes], group: TeamOwner) -> Iterator[tuple[bytes, IndexedLead]]:
    team, owner = group
    unpack = _DEADLINE.unpack_from
    for raw in entries:
        yield raw, IndexedLead(unpack(raw)[0], raw[8:].decode(), team, owner)
