"""Applying a lead event to its state and its partition's clocks only: no aggregate, no effect.

``Funnel.apply`` keeps every gauge of a worker up to date as it goes (windows, open leads,
positions, stage-time cuts, warnings, breaches) and appends the effects to export. A reader
that only wants the states as they end (``stream.report``, which derives its facts from the
final lead states and clocks) needs none of that: ``record_lead_event`` changes the lead's
state and the partition's watermarks and clock exactly as ``Funnel.apply`` does, and nothing
else. The state never depends on the clock except through the duplicate horizon, which is
judged here with the same clock (tests/stream/core/test_record.py holds the two equal).
"""

from __future__ import annotations

from schemas import LeadCreated, StageChanged
from stream.core.bounds import bound_lead, dedupe_key
from stream.core.effects import Effects, Status
from stream.core.funnel import Funnel
from stream.core.leads import LeadState, record_lead_created, record_stage_changed

__all__ = ["record_lead_event"]

_NO_EFFECTS = Effects()  # entries are counted only for released leads: passed unreleased


def record_lead_event(
    funnel: Funnel, partition: int, event: LeadCreated | StageChanged, t: float
) -> Status:
    """Apply ``event`` (``occurred_at`` ``t``) from ``partition`` to its lead's state in
    ``funnel.leads``: ``applied`` or ``duplicate``, as ``funnel.apply`` would answer."""
    view = funnel.view("leads", partition)
    rules, leads = funnel.rules, funnel.leads
    key = dedupe_key(event.event_id)
    raw = leads.get(event.lead_id)
    state = LeadState.decode(raw) if raw is not None else LeadState(view.partition)
    if raw is not None and key in state.seen:
        return "duplicate"
    clock = view.clock
    if t > view.watermark:
        view.watermark = t
    if isinstance(event, LeadCreated):
        record_lead_created(
            state, key, t, event.source, event.team, rules, False, _NO_EFFECTS,
            event.campaign, event.owner,
        )  # fmt: skip
    else:
        record_stage_changed(
            state, key, t, event.to_stage, event.team, False, _NO_EFFECTS, event.owner
        )
    funnel.forgotten_ids += bound_lead(state, min(clock, view.watermark) - rules.dedupe_horizon)
    leads[event.lead_id] = state.encode()
    if isinstance(event, LeadCreated):
        view.created_watermark = max(view.created_watermark, t)
    else:
        view.changed_watermark = max(view.changed_watermark, t)
    if funnel.clock_mode == "event" and view.event_clock > view.clock:
        view.clock = view.event_clock
    return "applied"
