"""A partition's open leads: one compact entry per lead, behind the gauges and the lead list.

A lead whose follow-up clock runs is kept as one ``bytes`` entry: its clock start as a
big-endian IEEE 754 double (8 bytes, which sort as the positive numbers they encode), then
its id in UTF-8, in a sorted list per *group*: the leads of one (team, owner, breach team,
team at each warning). Its deadline and warning instants are not stored: each is a function
of the clock start alone (``FunnelRules.deadline``, ``FunnelRules.warning_time``), the very
functions ``lead_status`` computes them with, so they are recomputed, identical, when needed.

Those functions never decrease as the start grows (a later start is never due sooner, on the
wall clock or the business one), so within a group the leads past a warning, or past their
deadline, are always the first ones: per group and *threshold* (each warning, then the
deadline) it is enough to keep the highest start passed. A heap over the groups holds, per
threshold, when its next lead passes (or an earlier instant: a lower bound, corrected when
it surfaces), so moving the clock costs nothing until something is due. A lead costs one
entry and a pointer (about 70 bytes with a 20-character id) instead of one float per
threshold and start in time heaps plus an index entry (about 200 bytes).

The caller passes a lead's previous ``OpenLead`` when it changes (it is derived from the
stored state), so removal is by value, and every count stays exact; the clock passed must be
the one the view was last moved to (``advance``).
"""

from __future__ import annotations

import heapq
import math
import struct
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Final

from sortedcontainers import SortedList

from stream.core.leadstatus import OpenLead
from stream.core.openindex import IndexedLead
from stream.core.rules import FunnelRules

_START: Final = struct.Struct(">d")
_AFTER: Final = b"\xff"  # after every id of the same start: UTF-8 never holds this byte
GroupKey = tuple[str, str | None, str, tuple[str, ...]]  # team, owner, breach team, warnings'


class _Group:
    """The open leads of one group, ordered by clock start then id."""

    __slots__ = ("due", "entries", "gid", "key", "passed")

    def __init__(self, key: GroupKey, gid: int, thresholds: int) -> None:
        self.key = key
        self.gid = gid
        self.entries = SortedList()
        # Per threshold: the highest start passed (every entry at or before it has passed),
        # and an instant at or before that at which the next entry passes (inf: none).
        self.passed = [-math.inf] * thresholds
        self.due = [math.inf] * thresholds


class OpenLeads:
    """Open leads of one partition: counts per team for the gauges, entries for the list."""

    __slots__ = (
        "_by_team",
        "_due",
        "_groups",
        "_ids",
        "_labels",
        "_loading",
        "_next_gid",
        "_thresholds",
        "at_risk",
        "awaiting",
        "overdue",
    )

    def __init__(self, rules: FunnelRules) -> None:
        self.awaiting: Counter[str] = Counter()  # team -> open leads
        self.overdue: Counter[str] = Counter()  # team -> open leads past their deadline
        # (team, warn_before label) -> open leads past that warning, not yet overdue
        self.at_risk: Counter[tuple[str, str]] = Counter()
        self._labels = tuple(label for label, _ in rules.warn_before)
        # The instant of each threshold as a function of the clock start: the warnings in
        # the rules' order, then the deadline.
        self._thresholds: tuple[Callable[[float], float], ...] = (
            *(_warning(rules, before) for _, before in rules.warn_before),
            rules.deadline,
        )
        self._groups: dict[GroupKey, _Group] = {}
        self._ids: dict[int, _Group] = {}
        self._by_team: dict[str, dict[GroupKey, _Group]] = {}
        self._due: list[tuple[float, int, int]] = []  # (instant, group id, threshold)
        self._next_gid = 0
        self._loading: dict[GroupKey, list[bytes]] | None = None  # see ``begin_load``

    def __len__(self) -> int:
        return sum(len(g.entries) for g in self._groups.values())

    # -- changes -------------------------------------------------------------------------

    def add(self, lead_id: str, lead: OpenLead, clock: float) -> None:
        """Count an open lead (not counted yet) at the view's ``clock``."""
        entry = _START.pack(lead.clock_start) + lead_id.encode()
        if self._loading is not None:
            self._loading.setdefault(group_key(lead), []).append(entry)
            return
        group = self._group(group_key(lead))
        start, team = lead.clock_start, lead.team
        group.entries.add(entry)
        self.awaiting[team] += 1
        passed, due = group.passed, group.due
        deadline = len(self._labels)
        if clock > lead.breach_at:
            self.overdue[team] += 1
            for k in range(deadline + 1):  # every warning comes before the deadline
                if start > passed[k]:
                    passed[k] = start
            return
        for k, (label, at, _) in enumerate(lead.warnings):
            if clock > at:
                self.at_risk[(team, label)] += 1
                if start > passed[k]:
                    passed[k] = start
            elif at < due[k]:
                due[k] = at
                heapq.heappush(self._due, (at, group.gid, k))
        if lead.breach_at < due[deadline]:
            due[deadline] = lead.breach_at
            heapq.heappush(self._due, (lead.breach_at, group.gid, deadline))

    def remove(self, lead_id: str, lead: OpenLead, clock: float) -> None:
        """Stop counting an open lead added with exactly these values."""
        key = group_key(lead)
        group = self._groups[key]
        group.entries.remove(_START.pack(lead.clock_start) + lead_id.encode())
        team = lead.team
        self.awaiting[team] -= 1
        if clock > lead.breach_at:
            self.overdue[team] -= 1
        else:
            for label, at, _ in lead.warnings:
                if clock > at:
                    self.at_risk[(team, label)] -= 1
        if not group.entries:
            del self._groups[key], self._ids[group.gid]
            mine = self._by_team[team]
            del mine[key]
            if not mine:
                del self._by_team[team]

    def begin_load(self) -> None:
        """Until ``end_load``, ``add`` only collects its leads, neither sorted nor counted: a
        rebuild adds a million at once, before its clock is known."""
        assert not self._groups, "a load starts empty"
        self._loading = {}

    def load(self, key: GroupKey, start: float, lead_id: str) -> None:
        """``add`` during a load, given the lead's group and clock start."""
        assert self._loading is not None, "not loading"
        self._loading.setdefault(key, []).append(_START.pack(start) + lead_id.encode())

    def end_load(self, clock: float) -> None:
        """Sort and count the leads added since ``begin_load``, at the view's ``clock``: per
        group and threshold, the leads passed are the first ones (a bisection)."""
        loading, self._loading = self._loading or {}, None
        unpack, deadline = _START.unpack_from, len(self._labels)
        for key, entries in loading.items():
            entries.sort()
            group = self._group(key)
            team, passed = key[0], []
            for k, instant in enumerate(self._thresholds):
                n = bisect_left(entries, True, key=lambda raw: not instant(unpack(raw)[0]) < clock)
                passed.append(n)
                if n:
                    group.passed[k] = unpack(entries[n - 1])[0]
                if n < len(entries):
                    group.due[k] = instant(unpack(entries[n])[0])
                    heapq.heappush(self._due, (group.due[k], group.gid, k))
            self.awaiting[team] += len(entries)
            if passed[deadline]:
                self.overdue[team] += passed[deadline]
            for k, label in enumerate(self._labels):
                if passed[k] > passed[deadline]:  # past the warning, not yet overdue
                    self.at_risk[(team, label)] += passed[k] - passed[deadline]
            group.entries.update(entries)

    def advance(self, clock: float) -> tuple[list[tuple[str, str]], list[str]]:
        """The clock moved to ``clock``: (warning team, label) of each lead whose warning it
        passed, and the breach team of each lead whose deadline it passed (each once)."""
        heap, ids = self._due, self._ids
        found: list[tuple[_Group, int]] = []
        while heap and heap[0][0] < clock:
            due, gid, k = heapq.heappop(heap)
            group = ids.get(gid)
            if group is not None and group.due[k] == due:
                found.append((group, k))
        warnings: list[tuple[str, str]] = []
        breaches: list[str] = []
        if not found:
            return warnings, breaches
        # Warnings first: a lead whose deadline passes has passed its warnings too.
        deadline = len(self._labels)
        found.sort(key=lambda item: item[1])
        for group, k in found:
            n = self._pass(group, k, clock)
            team, _, breach_team, warn_teams = group.key
            if k < deadline:
                label = self._labels[k]
                self.at_risk[(team, label)] += n
                warnings.extend([(warn_teams[k], label)] * n)
            elif n:
                self.overdue[team] += n
                breaches.extend([breach_team] * n)
                for label in self._labels:  # at risk for every warning until now
                    self.at_risk[(team, label)] -= n
        return warnings, breaches

    def _pass(self, group: _Group, k: int, clock: float) -> int:
        """Pass the group's entries whose threshold ``k`` is before ``clock``; how many."""
        instant, unpack = self._thresholds[k], _START.unpack_from
        low = None if group.passed[k] == -math.inf else _START.pack(group.passed[k]) + _AFTER
        n, last, at = 0, math.nan, math.inf
        for raw in group.entries.irange(minimum=low):
            start = unpack(raw)[0]
            if start != last:
                at, last = instant(start), start
                if not at < clock:
                    break
                group.passed[k] = start
            n += 1
        else:
            at = math.inf
        group.due[k] = at
        if at != math.inf:
            heapq.heappush(self._due, (at, group.gid, k))
        return n

    def _group(self, key: GroupKey) -> _Group:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(key, self._next_gid, len(self._thresholds))
            self._ids[group.gid] = group
            self._by_team.setdefault(key[0], {})[key] = group
            self._next_gid += 1
        return group

    # -- what the gauges and the lead list read ----------------------------------------------

    def oldest_start(self, team: str) -> float | None:
        """Clock start of the team's oldest open lead, None if it has none."""
        groups = self._by_team.get(team)
        if not groups:
            return None
        oldest: float = min(_START.unpack_from(g.entries[0])[0] for g in groups.values())
        return oldest

    def from_deadline(
        self, since: float | None, team: str | None = None, owner: str | None = None
    ) -> Iterator[tuple[bytes, IndexedLead]]:
        """The leads of ``team`` and ``owner`` (any when None) whose deadline is ``since`` or
        later (all when None), soonest deadline first then by id, each with its sort key."""
        groups = self._groups if team is None else self._by_team.get(team, {})
        streams = [
            self._listed(g, since) for g in groups.values() if owner is None or g.key[1] == owner
        ]
        return heapq.merge(*streams, key=_first)

    def _listed(self, group: _Group, since: float | None) -> Iterator[tuple[bytes, IndexedLead]]:
        deadline, entries = self._thresholds[-1], group.entries
        start_at = 0
        if since is not None:  # the first entry due at or after ``since`` (deadlines ascend)
            low, high = 0, len(entries)
            while low < high:
                mid = (low + high) // 2
                if deadline(_START.unpack_from(entries[mid])[0]) < since:
                    low = mid + 1
                else:
                    high = mid
            start_at = low
        team, owner = group.key[0], group.key[1]
        # Leads with the same deadline (different starts can share one) are listed by id.
        run: list[tuple[bytes, IndexedLead]] = []
        last = math.nan
        for raw in entries.islice(start_at):
            start = _START.unpack_from(raw)[0]
            due = deadline(start)
            if due != last and run:
                run.sort(key=_first)
                yield from run
                run = []
            last = due
            lead_id = raw[8:].decode()
            lead = IndexedLead(due, lead_id, team, owner, start)
            run.append((_START.pack(due) + raw[8:], lead))
        run.sort(key=_first)
        yield from run

    def warning_passed(self, label: str, start: float, clock: float) -> bool:
        """Whether a lead whose clock started at ``start`` is past warning ``label``."""
        return clock > self._thresholds[self._labels.index(label)](start)


def group_key(lead: OpenLead) -> GroupKey:
    """The group of an open lead: its team, owner, breach team and team at each warning."""
    return (lead.team, lead.owner, lead.breach_team, tuple([w[2] for w in lead.warnings]))


def _warning(rules: FunnelRules, before: float) -> Callable[[float], float]:
    return lambda start: rules.warning_time(start, before)


def _first(item: tuple[bytes, IndexedLead]) -> bytes:
    return item[0]
