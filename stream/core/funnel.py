"""The funnel state machine: applies events to per-key states and keeps the aggregates.

``Funnel`` is what the worker, the period report and the tests all drive. It knows nothing of
Faust or Kafka: states live in any ``KeyValueStore`` (a Faust table in the worker, a dict in
tests and reports), and effects are appended to ``funnel.effects`` for the caller to export.

The clock decides when deadlines pass. In ``wall`` mode it is moved by ``advance(now)``. In
``event`` mode each lead partition has its own clock: the lower of the
highest ``occurred_at`` applied from its ``lead_created`` and its ``stage_changed`` events.
Every event of a lead is in the same partition of both topics, so a deadline passes only once
both have been read past it, and the outcome does not depend on how fast the worker reads one
topic or partition against another (see docs/semantics.md). Orphan holds (stage changes
waiting for their lead) always pass on that partition event clock, in both modes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Literal, Protocol, TypeVar

from schemas import Event, LeadCreated, StageChanged, Visit
from stream.core.bounds import bound_lead, dedupe_key
from stream.core.effects import Effects, Status
from stream.core.eventtime import event_seconds
from stream.core.gauges import FollowupGauge, followup_gauges, stage_gauges, window_entries
from stream.core.leads import LeadState, record_lead_created, record_stage_changed
from stream.core.leadstatus import UNSEEN, LeadStatus, lead_status, new_status, status_effects
from stream.core.openleads import OpenLeads
from stream.core.rebuild import LeadLoad
from stream.core.rules import FunnelRules
from stream.core.stages import (
    NOT_TRACKED,
    Tracked,
    added_at_cut,
    first_entries,
    new_at_cut,
    tracked,
    whole_way,
)
from stream.core.view import PartitionView, WindowKey, lead_windows
from stream.core.visits import VisitCells, VisitorState
from stream.core.windows import WindowsOfStage, window_start

ClockMode = Literal["wall", "event"]
StateKind = Literal["visits", "leads"]
ViewKey = tuple[StateKind, int]
_S = TypeVar("_S", LeadState, VisitorState)
# A held lead state after its last event, the view's clock and event clock it was applied at,
# and what was derived from it then: its status, windows and stage position. These depend on
# nothing else, so the state's next event at the same clocks need not derive them again.
_LeadFacts = tuple[LeadState, float, float, LeadStatus, tuple[WindowKey, ...], Tracked]


class KeyValueStore(Protocol):
    """Where states are kept: a Faust table in the worker, a dict elsewhere."""

    def get(self, key: str) -> bytes | None: ...

    def __setitem__(self, key: str, value: bytes) -> None: ...

    def items(self) -> Iterable[tuple[str | bytes, bytes]]: ...


class Funnel:
    """Applies events, advances the clock and exposes exact aggregates per owned partition."""

    def __init__(
        self,
        rules: FunnelRules,
        leads: KeyValueStore,
        visitors: KeyValueStore,
        clock_mode: ClockMode = "event",
        now: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self.leads = leads
        self.visitors = visitors
        self.clock_mode = clock_mode
        self._now = now
        self.clock = now() if clock_mode == "wall" else 0.0
        # One view per input partition, apart for visits and for leads (they may be owned
        # by different workers).
        self.views: dict[ViewKey, PartitionView] = {}
        self._watermark = 0.0  # the highest view watermark, kept as events are applied
        self.effects = Effects(visit_stage=rules.visit_stage)
        self._largest_window = max(rules.windows, key=lambda w: w.seconds)
        self._windows_of_visit = WindowsOfStage(rules.visit_stage, rules.windows)
        self._late_cutoff = (-1.0, 0.0)  # (clock it was computed at, oldest window start kept)
        # With ``hold_visitor_states`` (the worker), a visitor state changed again after
        # its first visit stays decoded here until ``take_held_visitors()``: a visitor seen
        # many times in a fetch (a hot key) is decoded and encoded once per fetch, not once
        # per visit. Without it, every change is written to ``visitors`` at once.
        self.hold_visitor_states = False
        self._held_visitors: dict[str, VisitorState] = {}
        # The same for lead states (``hold_lead_states``, ``take_held_leads()``): a lead with
        # many events in a fetch (a CRM loop) is decoded and encoded once per fetch.
        self.hold_lead_states = False
        self._held_leads: dict[str, LeadState] = {}
        # What was derived from a held lead state after its last event (``_LeadFacts``): the
        # next event of that state at the same clocks starts from it.
        self._last_lead: _LeadFacts | None = None
        self._visit_cells = VisitCells(rules.windows)
        # Duplicate-detection ids forgotten because a key's state reached its cap
        # (stream.core.bounds), since the process started; the caller exports it.
        self.forgotten_ids = 0

    # -- applying events -------------------------------------------------------------------

    def view(self, kind: StateKind, partition: int) -> PartitionView:
        """The aggregates of one input partition (created empty on first use)."""
        view = self.views.get((kind, partition))
        if view is None:
            view = self.views[(kind, partition)] = self._new_view(partition)
            if self.clock_mode == "wall":
                view.clock = self.clock
        return view

    def _new_view(self, partition: int) -> PartitionView:
        return PartitionView(partition, OpenLeads(self.rules))

    def is_late(self, t: float) -> bool:
        """True if ``t`` falls before the oldest retained window."""
        now = self.clock if self.clock_mode == "wall" else self._watermark
        if now != self._late_cutoff[0]:
            cutoff = window_start(self._largest_window, now - self.rules.window_retention)
            self._late_cutoff = (now, cutoff)
        return t < self._late_cutoff[1]

    def apply(self, partition: int, event: Event, t: float | None = None) -> Status:
        """Apply one valid event from ``partition``: ``applied`` or ``duplicate``.

        ``t`` is the event's ``occurred_at`` in epoch seconds, if the caller has it already.
        """
        if t is None:
            t = event_seconds(event.occurred_at)
        if isinstance(event, Visit):
            status = self._apply_visit(self.view("visits", partition), event, t)
        else:
            view = self.view("leads", partition)
            status = self._apply_lead_event(view, event, t)
        return status

    def visit_applier(self, partition: int) -> Callable[[Visit, float], Status]:
        """``apply(partition, visit, t)`` for the visits of ``partition``, with the partition's
        view looked up once: the worker takes one per partition per fetch."""
        return partial(self._apply_visit, self.view("visits", partition))

    def _apply_visit(self, view: PartitionView, event: Visit, t: float) -> Status:
        visitor_id, key = event.visitor_id, dedupe_key(event.event_id)
        state = self._held_visitors.get(visitor_id)
        if state is None:
            raw = self.visitors.get(visitor_id)
            if raw is not None:
                state = VisitorState.decode(raw)
                if key in state.visits:
                    self.visitors[visitor_id] = raw  # written again: see _apply_lead_event
                    return "duplicate"
        elif key in state.visits:
            return "duplicate"  # held: written by the holder after the fetch
        if t > view.watermark:
            view.watermark = t
            if t > self._watermark:
                self._watermark = t
        horizon_start = view.watermark - self.rules.dedupe_horizon
        if state is None:
            self.visitors[visitor_id] = VisitorState.encode_first(
                view.partition, key, t, horizon_start
            )
        else:
            self.forgotten_ids += state.add_visit(
                key, t, horizon_start, self._visit_cells, view.watermark
            )
            if self.hold_visitor_states:
                self._held_visitors[visitor_id] = state
            else:
                self.visitors[visitor_id] = state.encode()
        visits, source = self.effects.visits, event.source
        visits[source] = visits.get(source, 0) + 1
        view.add_visit_windows(self._windows_of_visit.at(t))
        return "applied"

    def lead_state(self, lead_id: str) -> LeadState | None:
        """The lead's current state (held, else from the store), None if it has none."""
        state = self._held_leads.get(lead_id)
        if state is not None:
            return state
        raw = self.leads.get(lead_id)
        return None if raw is None else LeadState.decode(raw)

    def take_held_leads(self) -> dict[str, LeadState]:
        """The lead states held since the last call (``hold_lead_states``), for the caller
        to write (``state.encode()``, in the store of ``state.partition``)."""
        held, self._held_leads = self._held_leads, {}
        self._last_lead = None
        return held

    def take_held_visitors(self) -> dict[str, VisitorState]:
        """The visitor states held since the last call (``hold_visitor_states``), for the
        caller to write (``state.encode()``, in the store of ``state.partition``)."""
        held, self._held_visitors = self._held_visitors, {}
        return held

    def _apply_lead_event(
        self, view: PartitionView, event: LeadCreated | StageChanged, t: float
    ) -> Status:
        rules, clock, hold = self.rules, view.clock, view.event_clock
        key = dedupe_key(event.event_id)
        state = self._held_leads.get(event.lead_id)
        fresh = False
        if state is None:
            raw = self.leads.get(event.lead_id)
            if raw is None:
                state, fresh = LeadState(view.partition), True
            else:
                state = LeadState.decode(raw)
            if raw is not None and key in state.seen:
                # A replay after a crash finds the state already written locally, but its
                # changelog record may have been lost with the process: write it again, so
                # the changelog (what another worker recovers from) has every applied event.
                self.leads[event.lead_id] = raw
                return "duplicate"
        elif key in state.seen:
            return "duplicate"  # held: written by the holder after the fetch
        view.watermark = max(view.watermark, t)
        if t > self._watermark:
            self._watermark = t
        windows_before: tuple[WindowKey, ...] = ()
        # Taken, and kept again only if this event is applied to the end.
        last, self._last_lead = self._last_lead, None
        if fresh:  # a lead seen for the first time (most lead_created): nothing to undo
            before, tracked_before = UNSEEN, NOT_TRACKED
        elif last is not None and last[0] is state and last[1] == clock and last[2] == hold:
            _, _, _, before, windows_before, tracked_before = last  # as derived again
        else:
            before = lead_status(state, rules, clock, hold)
            windows_before = lead_windows(state, before, rules)
            tracked_before = tracked(state, rules, before.released)
        released, effects = before.released, self.effects
        if isinstance(event, LeadCreated):
            record_lead_created(
                state, key, t, event.source, event.team, rules, released, effects,
                event.campaign, event.owner,
            )  # fmt: skip
        else:
            record_stage_changed(
                state, key, t, event.to_stage, event.team, released, effects, event.owner
            )
        # The horizon runs in event time, as for visits: in wall mode the wall clock would
        # forget the id of every event older than the horizon (a backfill) the moment it is
        # applied, and count its duplicate again.
        self.forgotten_ids += bound_lead(state, min(clock, view.watermark) - rules.dedupe_horizon)
        # The status after the bounds: that of the state as stored, which the next event, a
        # rebuild and a report derive (a dropped team or owner assignment can decide
        # ``team_at`` at a deadline).
        after = new_status(state, rules, clock, before, effects, hold)
        if self.hold_lead_states:
            self._held_leads[event.lead_id] = state
        else:
            self.leads[event.lead_id] = state.encode()
        windows_after = lead_windows(state, after, rules)
        view.move_windows(windows_before, windows_after)
        view.set_lead(event.lead_id, before.open, after, clock)
        tracked_after = self._track(view, event.lead_id, tracked_before, state, after.released)
        if self.hold_lead_states:
            self._last_lead = (state, clock, hold, after, windows_after, tracked_after)
        if isinstance(event, LeadCreated):
            view.created_watermark = max(view.created_watermark, t)
        else:
            view.changed_watermark = max(view.changed_watermark, t)
        if self.clock_mode == "event":
            self._move_view_clock(view, view.event_clock)
        else:
            self._release_due(view)
        return "applied"

    # -- the clock ---------------------------------------------------------------------------

    def advance(self, now: float | None = None) -> None:
        """Move the wall clock (``wall`` mode; in ``event`` mode the watermarks move it)."""
        if self.clock_mode != "wall":
            return
        new = self._now() if now is None else now
        if new <= self.clock:
            return
        self.clock = new
        for (kind, _), view in self.views.items():
            if kind == "leads":
                self._move_view_clock(view, new)

    def _move_view_clock(self, view: PartitionView, new: float) -> None:
        if new <= view.clock:
            return
        view.clock = new
        # Warnings first: a lead whose deadline passes has passed its warnings too.
        warnings, breaches = view.pop_due(new)
        self.effects.warnings.extend(warnings)
        self.effects.breaches.extend(breaches)
        view.pop_stuck(new)
        self._release_due(view)

    def _release_due(self, view: PartitionView) -> None:
        """Release the held leads whose orphan hold the partition's event clock passed.

        Orphan holds are judged in event time in both modes: a stage change waits for its
        lead until the partition has been read past it (plus the hold), however late that is
        in wall time, so a catch-up does not count stage changes on their own.
        """
        for lead_id in view.pop_released(view.event_clock):
            self._release(view, lead_id)
        for lead_id, cut in view.pop_cuts(view.event_clock):
            state = self.lead_state(lead_id)
            if state is not None:
                self._observe_cut(state, cut)

    def _observe_cut(self, state: LeadState, cut: float) -> None:
        rules = self.rules
        self.effects.stage_times.extend(
            new_at_cut(first_entries(state, rules), cut, whole_way(rules))
        )

    def _track(
        self, view: PartitionView, lead_id: str, before: Tracked, state: LeadState, released: bool
    ) -> Tracked:
        """Move the lead's position, and schedule (or, when already due, observe) the stage
        times of its new first entries (``stream.core.stages``); returns what it moved to."""
        rules = self.rules
        after = tracked(state, rules, released)
        view.set_position(lead_id, before.position, after.position, view.clock)
        if len(after.entries) < 2 or after.entries == before.entries:
            # One first entry makes no stage time: nothing to observe or schedule (a million
            # open leads cost no memory here); its cuts are scheduled with its second.
            return after
        hold, clock = rules.orphan_hold, view.event_clock
        for cut in after.cuts:
            if cut + hold < clock:
                # Due already (observed, if at all, with the entries known then): observe what
                # the change adds there, as for any entry read later than the allowance.
                self.effects.stage_times.extend(added_at_cut(before, after, cut, whole_way(rules)))
            else:
                view.push_cut(lead_id, cut, cut + hold)
        return after

    def _release(self, view: PartitionView, lead_id: str) -> None:
        """Count a held lead on its own: its orphan hold has passed with no lead_created."""
        state = self.lead_state(lead_id)
        if state is None:
            return
        rules = self.rules
        # The status just before the clock passed the hold, and now.
        hold_passed = (state.held_since() or 0.0) + rules.orphan_hold
        before = lead_status(state, rules, view.clock, hold_passed)
        after = lead_status(state, rules, view.clock, view.event_clock)
        status_effects(before, after, state, self.effects)
        view.add_windows(lead_windows(state, after, rules), 1)
        view.set_lead(lead_id, before.open, after, view.clock)
        self._track(view, lead_id, NOT_TRACKED, state, after.released)

    # -- ownership -------------------------------------------------------------------------

    def rebuild(self, lead_partitions: Iterable[int], visit_partitions: Iterable[int]) -> None:
        """Derive the aggregates of the owned partitions from the stored states.

        Called after recovery (start-up, rebalance): every view of an owned partition is
        rebuilt from scratch, so the gauges are exact whatever happened before.
        """
        assert not self._held_visitors, "visitor states held across a rebuild"
        assert not self._held_leads, "lead states held across a rebuild"
        wanted_leads, wanted_visits = set(lead_partitions), set(visit_partitions)
        self.views = {("leads", p): self._new_view(p) for p in wanted_leads}
        self.views.update({("visits", p): self._new_view(p) for p in wanted_visits})
        # Each lead state is read once (stream.core.rebuild); visitor states twice, decoding
        # as they go: first their watermarks, then their windows. Holding every decoded state
        # at once would double the memory of a worker with a million open leads.
        leads = LeadLoad(self.rules, {p: self.views[("leads", p)] for p in wanted_leads})
        leads.read(self.leads.items())
        # The first pass over visitors reads only the clock facts of each state.
        for _, raw in self.visitors.items():
            partition, latest = VisitorState.clock_facts(raw)
            if partition in wanted_visits:
                view = self.views[("visits", partition)]
                view.watermark = max(view.watermark, latest)
        self._update_watermark()
        if self.clock_mode == "wall":
            self.clock = max(self.clock, self._now())
        for (kind, _), view in self.views.items():
            if kind == "leads":
                view.clock = (
                    self.clock
                    if self.clock_mode == "wall"
                    else min(view.created_watermark, view.changed_watermark)
                )
        leads.finish()
        for _, visitor in _states(self.visitors.items(), wanted_visits, VisitorState.decode):
            view = self.views[("visits", visitor.partition)]
            for t, n in visitor.visit_times():
                view.add_windows(self._windows_of_visit.at(t), n)

    def revoke(self, lead_partitions: Iterable[int], visit_partitions: Iterable[int]) -> None:
        """Stop exporting partitions that another worker owns now."""
        for p in lead_partitions:
            self.views.pop(("leads", p), None)
        for p in visit_partitions:
            self.views.pop(("visits", p), None)
        self._update_watermark()

    def _update_watermark(self) -> None:
        self._watermark = max((v.watermark for v in self.views.values()), default=0.0)

    # -- what the gauges show ----------------------------------------------------------------

    def window_entries(self) -> dict[tuple[str, str, str], int]:
        """Entries per (stage, window, period) for the current and previous windows
        (``stream.core.gauges.window_entries``)."""
        return window_entries(self.views.values(), self.rules, self.watermark)

    @property
    def watermark(self) -> float:
        """Highest ``occurred_at`` applied across the owned partitions (0 before any)."""
        return self._watermark

    def stage_gauges(self) -> dict[str, tuple[int, int]]:
        """Per funnel-order stage: (leads in it, of those stuck) (``stream.core.gauges``)."""
        return stage_gauges(self.views.values(), self.rules)

    def followup_gauges(self) -> dict[str, FollowupGauge]:
        """Open leads per team (``stream.core.gauges.followup_gauges``)."""
        return followup_gauges(self.views.values(), self.rules)

    def prune(self) -> None:
        """Forget window counts past the retention."""
        now = self.clock if self.clock_mode == "wall" else self.watermark
        cutoff = window_start(self._largest_window, now - self.rules.window_retention)
        for view in self.views.values():
            view.prune_windows(cutoff)


def _states(
    items: Iterable[tuple[str | bytes, bytes]], partitions: set[int], decode: Callable[[bytes], _S]
) -> Iterator[tuple[str, _S]]:
    for key, raw in items:
        state = decode(raw)
        if state.partition in partitions:
            yield (key.decode() if isinstance(key, bytes) else key), state
