"""Aggregates of one partition's states: window counts, open leads, held leads.

A ``PartitionView`` is never stored: it is derived from the lead and visitor states of its
partition, kept up to date as states change, and rebuilt from the states after a restart or
a rebalance. That is what makes every exported gauge exact after a crash.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

from stream.core.leads import LeadState
from stream.core.leadstatus import LeadStatus, OpenLead
from stream.core.openindex import OpenLeadIndex
from stream.core.openleads import OpenLeads
from stream.core.rules import FunnelRules
from stream.core.stages import Position
from stream.core.timeheap import TimeHeap
from stream.core.windows import window_start

WindowKey = tuple[str, str, float]  # (stage, window name, window start)


def lead_windows(state: LeadState, status: LeadStatus, rules: FunnelRules) -> tuple[WindowKey, ...]:
    """The windows a released lead counts in: one per stage (its first entry) per window size."""
    return released_windows(state, rules) if status.released else ()


def released_windows(state: LeadState, rules: FunnelRules) -> tuple[WindowKey, ...]:
    """The windows of a lead once released: one per stage (its first entry) per window size."""
    return entry_windows(state.entries, rules)


def entry_windows(entries: dict[str, list[float]], rules: FunnelRules) -> tuple[WindowKey, ...]:
    """``released_windows`` of a lead with these entries."""
    keys: list[WindowKey] = []
    for stage, times in entries.items():
        first = times[0]
        for spec in rules.windows:
            keys.append((stage, spec.name, window_start(spec, first)))
    return tuple(keys)


@dataclass(slots=True)
class PartitionView:
    """Aggregates over the states of one input partition.

    Open leads are kept in ``open_leads`` (``OpenLeads``): one compact entry per lead, by
    clock start, with the counts per team the gauges show (awaiting, overdue, at risk per
    warning). The caller passes a lead's previous status along with the new one, so a change
    is applied by value. Held leads are few (stage changes waiting for their lead) and are
    kept by id, to be released when their hold ends.
    """

    partition: int
    open_leads: OpenLeads
    watermark: float = 0.0  # highest occurred_at applied
    # The clock deadlines and orphan holds are judged by. In event mode it is the lower of
    # the two topics' watermarks (lead_created, stage_changed) of this partition: a lead and
    # all its stage changes live in the same partition of both, so a deadline is only passed
    # once both topics have moved past it, whatever the order in which they are read.
    clock: float = 0.0
    created_watermark: float = 0.0
    changed_watermark: float = 0.0
    _window_counts: Counter[WindowKey] = field(default_factory=Counter)
    # Visits whose windows are not yet in ``_window_counts``: a run of visits counted in the
    # same windows (the same keys object: ``WindowsOfStage`` reuses it while they fall in
    # the same windows), added once when the run ends or the counts are read.
    _run_keys: tuple[WindowKey, ...] = ()
    _run_n: int = 0
    held: dict[str, float] = field(default_factory=dict)  # lead_id -> release time
    _held_heap: list[tuple[float, str]] = field(default_factory=list)
    in_stage: Counter[str] = field(default_factory=Counter)  # stage -> leads there now
    stuck: Counter[str] = field(default_factory=Counter)  # stage -> of those, stuck
    _stuck_heaps: dict[str, TimeHeap] = field(default_factory=dict)  # when each gets stuck
    # stage -> the leads in it that a limit applies to, by when they get stuck (the list)
    stuck_leads: dict[str, OpenLeadIndex] = field(default_factory=dict)
    # stage times to observe: (due, lead id, cut), and the (lead id, cut) pairs in it
    _cut_heap: list[tuple[float, str, float]] = field(default_factory=list)
    _cuts: set[tuple[str, float]] = field(default_factory=set)

    @property
    def event_clock(self) -> float:
        """The partition's event clock: the lower of its two topics' watermarks."""
        return min(self.created_watermark, self.changed_watermark)

    @property
    def awaiting(self) -> Counter[str]:
        """Team -> open leads."""
        return self.open_leads.awaiting

    @property
    def overdue(self) -> Counter[str]:
        """Team -> open leads past their deadline."""
        return self.open_leads.overdue

    @property
    def at_risk(self) -> Counter[tuple[str, str]]:
        """(team, warn_before label) -> open leads past that warning, not yet overdue."""
        return self.open_leads.at_risk

    # -- windows ---------------------------------------------------------------------------

    @property
    def window_counts(self) -> Counter[WindowKey]:
        """Entries per window, ``(stage, window name, start)`` -> count, every visit included."""
        if self._run_n:
            self._end_run()
        return self._window_counts

    def add_visit_windows(self, keys: tuple[WindowKey, ...]) -> None:
        """``add_windows(keys, 1)`` for a visit, at a fraction of the cost: visits come
        mostly in time order, so most share the previous visit's windows and only the
        length of the run grows."""
        if keys is not self._run_keys:
            if self._run_n:
                self._end_run()
            self._run_keys = keys
        self._run_n += 1

    def _end_run(self) -> None:
        n, self._run_n = self._run_n, 0
        self.add_windows(self._run_keys, n)

    def add_windows(self, keys: tuple[WindowKey, ...], sign: int) -> None:
        """Add ``sign`` (1, -1, or a run's length) to the count of each window."""
        counts = self._window_counts
        for key in keys:
            n = counts[key] + sign
            if n:
                counts[key] = n
            else:
                del counts[key]

    def move_windows(self, old: tuple[WindowKey, ...], new: tuple[WindowKey, ...]) -> None:
        """``add_windows(old, -1)`` then ``add_windows(new, 1)``: a lead's windows before and
        after an event. Both list the lead's stages in the order it entered them, so they
        mostly share a prefix (a stage change adds the windows of one stage at the end),
        whose counts would go down and up again: only what follows it is counted."""
        same, end = 0, min(len(old), len(new))
        while same < end and old[same] == new[same]:
            same += 1
        self.add_windows(old[same:], -1)
        self.add_windows(new[same:], 1)

    def prune_windows(self, before: float) -> None:
        """Forget windows that start before ``before`` (past the retention)."""
        for key in [k for k in self.window_counts if k[2] < before]:
            del self.window_counts[key]

    # -- open and held leads -----------------------------------------------------------------

    def set_lead(
        self, lead_id: str, old: OpenLead | None, status: LeadStatus, clock: float
    ) -> None:
        """Replace the lead's open clock ``old`` (as last set, None if not open) and its hold
        by those of ``status``; ``clock`` is the view's clock."""
        new = status.open
        if old != new:
            if old is not None:
                self.open_leads.remove(lead_id, old, clock)
            if new is not None:
                self.open_leads.add(lead_id, new, clock)
        if status.held_until is None:
            if self.held:
                self.held.pop(lead_id, None)
        elif self.held.get(lead_id) != status.held_until:
            self.held[lead_id] = status.held_until
            heapq.heappush(self._held_heap, (status.held_until, lead_id))

    def pop_due(self, clock: float) -> tuple[list[tuple[str, str]], list[str]]:
        """(warning team, label) of each open lead whose warning instant the clock has now
        passed, and the breach team of each whose deadline it passed (each once)."""
        return self.open_leads.advance(clock)

    # -- where leads are, and their stage times still to observe ------------------------------

    def set_position(
        self, lead_id: str, old: Position | None, new: Position | None, clock: float
    ) -> None:
        """Replace a lead's position ``old`` by ``new`` (None: in no stage)."""
        if old == new:
            return
        for position, change in ((old, self._unlist_stuck), (new, self._list_stuck)):
            if position is not None and position.stuck_at is not None:
                change(lead_id, position)
        if old is not None:
            self.in_stage[old.stage] -= 1
            if old.stuck_at is not None:
                if clock > old.stuck_at:
                    self.stuck[old.stage] -= 1
                else:
                    self._stuck_heaps[old.stage].remove(old.stuck_at)
        if new is not None:
            self.in_stage[new.stage] += 1
            if new.stuck_at is not None:
                if clock > new.stuck_at:
                    self.stuck[new.stage] += 1
                else:
                    heap = self._stuck_heaps.get(new.stage)
                    if heap is None:
                        heap = self._stuck_heaps[new.stage] = TimeHeap()
                    heap.push(new.stuck_at)

    def place(self, lead_id: str, new: Position) -> None:
        """``set_position(lead_id, None, new, -inf)``, for a rebuild: a stuck instant goes to
        its heap whatever the clock (``pop_stuck`` counts those the clock passed)."""
        self.in_stage[new.stage] += 1
        if new.stuck_at is not None:
            self._list_stuck(lead_id, new)
            heap = self._stuck_heaps.get(new.stage)
            if heap is None:
                heap = self._stuck_heaps[new.stage] = TimeHeap()
            heap.push(new.stuck_at)

    def _list_stuck(self, lead_id: str, p: Position) -> None:
        assert p.stuck_at is not None
        index = self.stuck_leads.get(p.stage)
        if index is None:
            index = self.stuck_leads[p.stage] = OpenLeadIndex()
        index.add(p.team, p.owner, p.stuck_at, lead_id)

    def _unlist_stuck(self, lead_id: str, p: Position) -> None:
        assert p.stuck_at is not None
        self.stuck_leads[p.stage].remove(p.team, p.owner, p.stuck_at, lead_id)

    def pop_stuck(self, clock: float) -> None:
        """Leads whose stay in their stage the clock has now passed are stuck from now on."""
        for stage, heap in self._stuck_heaps.items():
            passed = heap.pop_below(clock)
            if passed:
                self.stuck[stage] += len(passed)

    def push_cut(self, lead_id: str, cut: float, due: float) -> None:
        """Observe the stage times of ``lead_id``'s first entries at ``cut`` once the event
        clock passes ``due`` (each lead and cut once)."""
        if (lead_id, cut) not in self._cuts:
            self._cuts.add((lead_id, cut))
            heapq.heappush(self._cut_heap, (due, lead_id, cut))

    def pop_cuts(self, clock: float) -> list[tuple[str, float]]:
        """(lead id, cut) of every cut whose due time the event clock has now passed, in
        due order."""
        heap, found = self._cut_heap, []
        while heap and heap[0][0] < clock:
            _, lead_id, cut = heapq.heappop(heap)
            self._cuts.discard((lead_id, cut))
            found.append((lead_id, cut))
        return found

    def pop_released(self, clock: float) -> list[str]:
        """Held leads whose orphan hold the clock has now passed."""
        heap, found = self._held_heap, []
        while heap and heap[0][0] < clock:
            until, lead_id = heapq.heappop(heap)
            if self.held.get(lead_id) == until:
                del self.held[lead_id]
                found.append(lead_id)
        return found

    def oldest_open(self, team: str) -> float | None:
        """Clock start of the team's oldest open lead in this partition."""
        return self.open_leads.oldest_start(team)
