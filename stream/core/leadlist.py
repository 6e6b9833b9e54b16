"""The leads behind the numbers: open leads listed soonest deadline first.

``list_leads`` answers ``/leads`` (and ``funnel leads``) for the partitions a ``Funnel`` owns,
from each partition view's open leads (``OpenLeads``; stuck leads: an ``OpenLeadIndex`` per
stage), with the same clock as the gauges, so that the leads listed as ``overdue``,
``at_risk`` or ``stuck`` are exactly those ``funnel_leads_overdue``, ``funnel_leads_at_risk``
and ``funnel_leads_stuck`` count. Only the leads returned are read from the state store.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from stream.core.funnel import Funnel
from stream.core.leads import LeadState
from stream.core.openindex import IndexedLead
from stream.core.stages import position
from stream.core.view import PartitionView

LeadListStatus = Literal["awaiting", "at_risk", "overdue", "stuck"]
LEAD_LIST_STATUSES: tuple[LeadListStatus, ...] = ("awaiting", "at_risk", "overdue", "stuck")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class LeadRow:
    """One open lead as listed: who owns it, where it stands, how long is left."""

    lead_id: str
    team: str
    owner: str | None
    source: str | None
    campaign: str | None
    stage: str | None  # the last funnel-order stage reached
    # Open leads: when the follow-up clock started, and when the lead is overdue (the SLA
    # deadline plus sla.breach_grace). Stuck leads: when it entered its stage, and when it
    # became stuck there (funnel.stuck_after).
    clock_start: float
    deadline: float
    seconds_left: float  # deadline - the partition's clock; negative when overdue or stuck
    partition: int

    def as_json(self) -> dict[str, object]:
        return {
            "lead_id": self.lead_id,
            "team": self.team,
            "owner": self.owner,
            "source": self.source,
            "campaign": self.campaign,
            "stage": self.stage,
            "clock_start": self.clock_start,
            "deadline": self.deadline,
            "seconds_left": self.seconds_left,
        }


def list_leads(
    funnel: Funnel,
    status: LeadListStatus = "awaiting",
    *,
    team: str | None = None,
    owner: str | None = None,
    before: str | None = None,
    stage: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[LeadRow]:
    """Up to ``limit`` open leads of the owned lead partitions with ``status``, soonest
    deadline first (then by id), filtered by current ``team`` and ``owner``.

    ``awaiting``: every open lead; ``overdue``: past its deadline (plus grace); ``at_risk``:
    past the warning ``before`` (a ``sla.warn_before`` label; default the largest) and not
    overdue; ``stuck``: in ``stage`` (any when None) for longer than ``funnel.stuck_after``
    allows, longest stuck first. Raises ``ValueError`` on an unknown label or stage.
    """
    rules = funnel.rules
    label = before if before is not None else default_warning(funnel)
    if label is not None and label not in {name for name, _ in rules.warn_before}:
        raise ValueError(f"before must be one of sla.warn_before, not {label!r}")
    if stage is not None and stage not in rules.stages:
        raise ValueError(f"stage must be a funnel stage ({', '.join(rules.stages)}), not {stage!r}")
    streams = []
    for (kind, _), view in sorted(funnel.views.items()):
        if kind != "leads":
            continue
        if status == "stuck":
            streams.append(_with_view(_stuck(view, stage, team, owner), view))
            continue
        if status == "awaiting":
            found = view.open_leads.from_deadline(None, team, owner)
        elif status == "overdue":
            found = _overdue(view, team, owner)
        elif label is None:
            continue
        else:
            found = _at_risk(view, team, owner, label)
        streams.append(_with_view(found, view))
    rows: list[LeadRow] = []
    for _, lead, view in heapq.merge(*streams, key=lambda item: item[0]):
        if len(rows) >= limit:
            break
        row = _stuck_row(funnel, view, lead) if status == "stuck" else _row(funnel, view, lead)
        if row is not None:
            rows.append(row)
    return rows


def default_warning(funnel: Funnel) -> str | None:
    """The label of the largest ``sla.warn_before`` (None without warnings)."""
    warn = funnel.rules.warn_before
    return max(warn, key=lambda item: item[1])[0] if warn else None


def _with_view(
    found: Iterator[tuple[bytes, IndexedLead]], view: PartitionView
) -> Iterator[tuple[bytes, IndexedLead, PartitionView]]:
    for key, lead in found:
        yield key, lead, view


def _overdue(
    view: PartitionView, team: str | None, owner: str | None
) -> Iterator[tuple[bytes, IndexedLead]]:
    # Overdue once the clock is past the deadline, as the gauge counts them.
    for key, lead in view.open_leads.from_deadline(None, team, owner):
        if lead.deadline >= view.clock:
            return
        yield key, lead


def _at_risk(
    view: PartitionView, team: str | None, owner: str | None, label: str
) -> Iterator[tuple[bytes, IndexedLead]]:
    """Leads not yet overdue whose warning ``label`` the clock has passed.

    A lead's warning instant and deadline both grow with its clock start, so in deadline
    order the leads at risk come first: the walk stops at the first lead past a lead that is
    not at risk with a later deadline. Each candidate's warning is computed from its start.
    """
    clock, stop_after, index = view.clock, None, view.open_leads
    for key, lead in index.from_deadline(view.clock, team, owner):
        if stop_after is not None and lead.deadline > stop_after:
            return
        assert lead.clock_start is not None
        if index.warning_passed(label, lead.clock_start, clock):
            yield key, lead
        else:
            stop_after = lead.deadline


def _stuck(
    view: PartitionView, stage: str | None, team: str | None, owner: str | None
) -> Iterator[tuple[bytes, IndexedLead]]:
    """Leads stuck in ``stage`` (any), by when they got stuck, as the gauge counts them."""
    streams = [
        index.from_deadline(None, team, owner)
        for name, index in sorted(view.stuck_leads.items())
        if stage is None or name == stage
    ]
    for key, lead in heapq.merge(*streams, key=lambda item: item[0]):
        if lead.deadline >= view.clock:
            return
        yield key, lead


def _stuck_row(funnel: Funnel, view: PartitionView, lead: IndexedLead) -> LeadRow | None:
    state = _state(funnel, lead.lead_id)
    where = None if state is None else position(state, funnel.rules)
    if state is None or where is None:
        return None
    return LeadRow(
        lead_id=lead.lead_id,
        team=lead.team,
        owner=lead.owner,
        source=state.source,
        campaign=state.campaign,
        stage=where.stage,
        clock_start=where.entered_at,
        deadline=lead.deadline,
        seconds_left=lead.deadline - view.clock,
        partition=view.partition,
    )


def _state(funnel: Funnel, lead_id: str) -> LeadState | None:
    return funnel.lead_state(lead_id)  # the held state first, within a fetch


def _row(funnel: Funnel, view: PartitionView, lead: IndexedLead) -> LeadRow | None:
    state = _state(funnel, lead.lead_id)
    if state is None:
        return None
    rules = funnel.rules
    stage = next((s for s in reversed(rules.stages) if s in state.entries), None)
    start = state.clock_start(rules)
    return LeadRow(
        lead_id=lead.lead_id,
        team=lead.team,
        owner=lead.owner,
        source=state.source,
        campaign=state.campaign,
        stage=stage,
        clock_start=lead.deadline if start is None else start,
        deadline=lead.deadline,
        seconds_left=lead.deadline - view.clock,
        partition=view.partition,
    )
