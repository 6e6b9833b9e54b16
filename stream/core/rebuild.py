"""The lead side of a rebuild: the aggregates of the owned lead partitions from their states.

After a start or a rebalance every lead state of the owned partitions is read once (one JSON
decode each, a million of them after a restart with a million open leads). Everything a lead
contributes that does not depend on its partition's clock is added as it is read: its
windows, its open clock (collected unsorted, ``OpenLeads.begin_load``), its stage and stuck
instant, its stage-time cuts. The clock (the lower of the partition's two topic watermarks, or
the wall clock) is known only once every state was read; then the open leads are sorted and
counted against it, the stuck instants it passed are counted, and the cuts it passed are
dropped (they were observed before the restart). A lead that never arrived is released or
held depending on that clock: its state is read again then (such leads are few).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stream.core.codec import decode_json
from stream.core.leads import LeadState
from stream.core.leadstatus import lead_status, open_lead
from stream.core.openleads import GroupKey, group_key
from stream.core.rules import FunnelRules
from stream.core.stages import Tracked, tracked, tracked_entries
from stream.core.view import PartitionView, entry_windows, lead_windows, released_windows


class LeadLoad:
    """Reads the lead states of a rebuild into fresh partition views (``views``)."""

    def __init__(self, rules: FunnelRules, views: dict[int, PartitionView]) -> None:
        self.rules = rules
        self.views = views
        # Leads that never arrived (held, or released on their own): read again in ``finish``.
        self._unarrived: list[tuple[str, bytes]] = []
        for view in views.values():
            view.open_leads.begin_load()

    def read(self, items: Iterable[tuple[str | bytes, bytes]]) -> None:
        """Read every stored state; those of partitions not rebuilt are skipped."""
        views, unarrived = self.views, self._unarrived
        for key, raw in items:
            fields = decode_json(raw)
            view = views.get(fields[0])
            if view is None:
                continue
            # Its clock facts: its latest lead_created and stage_changed. Each applied event
            # entered a stage at its time and the latest entries are kept (stream.core.bounds),
            # so the later of the two is also its latest stage entry.
            created, changed = fields[6], fields[7]
            if created > view.created_watermark:
                view.created_watermark = created
            if changed > view.changed_watermark:
                view.changed_watermark = changed
            latest = created if created > changed else changed
            if latest > view.watermark:
                view.watermark = latest
            lead_id = key.decode() if isinstance(key, bytes) else key
            if fields[1] is None:
                unarrived.append((lead_id, raw))
            elif len(fields) < 10 or len(fields[3]) != 1 or fields[3][0][1] != fields[8]:
                # Written before the team was kept, or reassigned: through its state.
                self._arrived(view, lead_id, LeadState.from_fields(fields))
            else:
                self._usual(view, lead_id, fields)

    def _usual(self, view: PartitionView, lead_id: str, fields: list[Any]) -> None:
        """An arrived lead with one team all along (most leads), read from its JSON fields
        (``LeadState.encode``) without building its state: ``_arrived``'s result."""
        rules, entries, team = self.rules, fields[4], fields[8]
        owners = fields[11] if len(fields) > 11 else ()
        owner = owners[-1][1] if owners else None
        view.add_windows(entry_windows(entries, rules), 1)
        started = entries.get(rules.clock_starts_at)
        if started and rules.followup_stages.isdisjoint(entries):
            group = (team, owner, team, (team,) * len(rules.warn_before))
            view.open_leads.load(group, started[0], lead_id)
        self._place(view, lead_id, tracked_entries(entries, rules, team, owner))

    def _arrived(self, view: PartitionView, lead_id: str, state: LeadState) -> None:
        rules = self.rules
        view.add_windows(released_windows(state, rules), 1)
        start = state.clock_start(rules)
        if start is not None and state.clock_stop(rules) is None:
            view.open_leads.load(_open_group(state, rules, start), start, lead_id)
        self._place(view, lead_id, tracked(state, rules, True))

    def finish(self) -> None:
        """Count what depends on the views' clocks (set by the caller since ``read``)."""
        rules = self.rules
        for lead_id, raw in self._unarrived:
            state = LeadState.decode(raw)
            view = self.views[state.partition]
            status = lead_status(state, rules, view.clock, view.event_clock)
            view.add_windows(lead_windows(state, status, rules), 1)
            view.set_lead(lead_id, None, status, view.clock)
            if status.released:
                self._place(view, lead_id, tracked(state, rules, True))
        self._unarrived = []
        for view in self.views.values():
            view.open_leads.end_load(view.clock)
            view.pop_stuck(view.clock)
            view.pop_cuts(view.event_clock)  # due before the restart: observed then

    def _place(self, view: PartitionView, lead_id: str, contribution: Tracked) -> None:
        """The lead's stage, stuck instant (counted in ``finish``) and cuts to observe."""
        if contribution.position is not None:
            view.place(lead_id, contribution.position)
        if len(contribution.entries) > 1:
            # The event clock read so far is a lower bound: a cut due before it is dropped
            # now, the others once the clock is known.
            hold, clock = self.rules.orphan_hold, view.event_clock
            for cut in contribution.cuts:
                if cut + hold >= clock:
                    view.push_cut(lead_id, cut, cut + hold)


def _open_group(state: LeadState, rules: FunnelRules, start: float) -> GroupKey:
    """``group_key(open_lead(state, rules))`` of an open lead, at once for the usual lead:
    one team all along, its own (no reassignment), so that team at every instant."""
    teams = state.teams
    if len(teams) == 1 and teams[0][1] == state.team:
        team = teams[0][1]
        return (team, state.current_owner, team, (team,) * len(rules.warn_before))
    opened = open_lead(state, rules)
    assert opened is not None and opened.clock_start == start
    return group_key(opened)
