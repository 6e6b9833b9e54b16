"""Each sales rep's follow-up record in a period: the report's owners table (pure).

Built from the lead outcomes of a recount (``stream.report.facts``); ``build_report``
(``stream.report.model``) puts the rows in the ``Report``. Who is credited with what is
explained in docs/reports.md.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stream.report.facts import LeadOutcome
from stream.report.latency import Latency


@dataclass(frozen=True, slots=True)
class OwnerRow:
    """One sales rep's follow-up record for the leads whose clock started in the period.

    Leads, follow-ups and open leads are the rep's who followed the lead up (else who owns it
    now); a breach is the rep's who owned the lead at its deadline. ``team`` is the team of
    most of the rep's leads.
    """

    owner: str
    team: str
    leads: int
    followups: int
    within_sla: int
    wall: Latency
    breaches: int
    open: int
    overdue: int

    @property
    def share_within_sla(self) -> float | None:
        """Follow-ups within the SLA ÷ follow-ups (None without any)."""
        return self.within_sla / self.followups if self.followups else None


NO_OWNER = "(no owner)"


def owner_rows(
    leads: Sequence[LeadOutcome], names: Mapping[str, str] | None = None
) -> list[OwnerRow]:
    """Per owner, worst first: most breaches, then most overdue, then the lowest share within
    the SLA; ``names`` (id -> display name) only changes what is shown."""
    names = names or {}
    credited: dict[str | None, list[LeadOutcome]] = defaultdict(list)
    breaches: Counter[str | None] = Counter()
    for lead in leads:
        credited[lead.owner].append(lead)
        if lead.breached:
            breaches[lead.breach_owner] += 1
    rows = []
    for owner in credited.keys() | breaches.keys():
        mine = credited.get(owner, [])
        followups = [lead.followup for lead in mine if lead.followup is not None]
        teams = Counter(lead.team for lead in mine)
        rows.append(
            OwnerRow(
                owner=NO_OWNER if owner is None else names.get(owner, owner),
                team=min(teams, key=lambda t: (-teams[t], t)) if teams else "",
                leads=len(mine),
                followups=len(followups),
                within_sla=sum(f.within_sla for f in followups),
                wall=Latency.of(f.wall_seconds for f in followups),
                breaches=breaches[owner],
                open=sum(lead.open for lead in mine),
                overdue=sum(lead.overdue for lead in mine),
            )
        )
    return sorted(
        rows,
        key=lambda r: (-r.breaches, -r.overdue, _share_or_one(r.share_within_sla), r.owner),
    )


def _share_or_one(share: float | None) -> float:
    return 1.0 if share is None else share
