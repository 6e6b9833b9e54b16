"""Aggregates of one partition's states: window counts, open leads, held leads.

A ``PartitionView`` is never stored: it is derived from the lead and visitor states of its
partition, kept up to date as states change, and rebuilt from the states after a restart or
a rebalance. That is what makes every exported gauge exact after a crash.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from stream.core.leads import LeadState, LeadStatus, OpenLead
from stream.core.rules import FunnelRules
from stream.core.windows import window_start

WindowKey = tuple[str, str, float]  # (stage, window name, window start)


def lead_windows(state: LeadState, status: LeadStatus, rules: FunnelRules) -> tuple[WindowKey, ...]:
    """The windows a released lead counts in: one per stage (its first entry) per window size."""
    if not status.released:
        return ()
    keys: list[WindowKey] = []
    for stage, times in state.entries.items():
        first = times[0]
        for spec in rules.windows:
            keys.append((stage, spec.name, window_start(spec, first)))
    return tuple(keys)


@dataclass(slots=True)
class PartitionView:
    """Aggregates over the states of one input partition."""

    partition: int
    watermark: float = 0.0  # highest occurred_at applied
    # The clock deadlines and orphan holds are judged by. In event mode it is the lower of
    # the two topics' watermarks (lead_created, stage_changed) of this partition: a lead and
    # all its stage changes live in the same partition of both, so a deadline is only passed
    # once both topics have moved past it, whatever the order in which they are read.
    clock: float = 0.0
    created_watermark: float = 0.0
    changed_watermark: float = 0.0
    window_counts: Counter[WindowKey] = field(default_factory=Counter)
    open_leads: dict[str, OpenLead] = field(default_factory=dict)
    held: dict[str, float] = field(default_factory=dict)  # lead_id -> release time
    awaiting: Counter[str] = field(default_factory=Counter)  # team -> open leads
    overdue: Counter[str] = field(default_factory=Counter)  # team -> open leads past breach_at
    _breach_heap: list[tuple[float, str]] = field(default_factory=list)
    _held_heap: list[tuple[float, str]] = field(default_factory=list)
    _oldest_heaps: dict[str, list[tuple[float, str]]] = field(
        default_factory=lambda: defaultdict(list)
    )

    @property
    def event_clock(self) -> float:
        """The partition's event clock: the lower of its two topics' watermarks."""
        return min(self.created_watermark, self.changed_watermark)

    # -- windows ---------------------------------------------------------------------------

    def add_windows(self, keys: tuple[WindowKey, ...], sign: int) -> None:
        """Add (sign=1) or remove (sign=-1) one count in each window."""
        counts = self.window_counts
        for key in keys:
            n = counts[key] + sign
            if n:
                counts[key] = n
            else:
                del counts[key]

    def prune_windows(self, before: float) -> None:
        """Forget windows that start before ``before`` (past the retention)."""
        for key in [k for k in self.window_counts if k[2] < before]:
            del self.window_counts[key]

    # -- open and held leads -----------------------------------------------------------------

    def set_lead(self, lead_id: str, status: LeadStatus, clock: float) -> None:
        """Record the lead's open clock and hold as of ``status`` (replacing the previous)."""
        old = self.open_leads.pop(lead_id, None)
        if old is not None:
            self.awaiting[old.team] -= 1
            if clock > old.breach_at:
                self.overdue[old.team] -= 1
        new = status.open
        if new is not None:
            self.open_leads[lead_id] = new
            self.awaiting[new.team] += 1
            changed = old is None or old.breach_at != new.breach_at
            if clock > new.breach_at:
                self.overdue[new.team] += 1
            elif changed:
                heapq.heappush(self._breach_heap, (new.breach_at, lead_id))
            # A new start need not move the deadline (on a calendar, two starts outside
            # opening hours share one), so the start itself is compared.
            if old is None or old.team != new.team or old.clock_start != new.clock_start:
                heapq.heappush(self._oldest_heaps[new.team], (new.clock_start, lead_id))
        if status.held_until is None:
            self.held.pop(lead_id, None)
        elif self.held.get(lead_id) != status.held_until:
            self.held[lead_id] = status.held_until
            heapq.heappush(self._held_heap, (status.held_until, lead_id))

    def pop_breached(self, clock: float) -> list[OpenLead]:
        """Open leads whose breach time the clock has now passed (each returned once)."""
        heap, found = self._breach_heap, []
        while heap and heap[0][0] < clock:
            breach_at, lead_id = heapq.heappop(heap)
            lead = self.open_leads.get(lead_id)
            if lead is not None and lead.breach_at == breach_at:
                self.overdue[lead.team] += 1
                found.append(lead)
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
        heap = self._oldest_heaps.get(team)
        while heap:
            start, lead_id = heap[0]
            lead = self.open_leads.get(lead_id)
            if lead is not None and lead.team == team and lead.clock_start == start:
                return start
            heapq.heappop(heap)
        return None
