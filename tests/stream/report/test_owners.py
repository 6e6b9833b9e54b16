"""The report's "Follow-up by owner": each rep's record against a count made by hand.

Seven leads, 24 h SLA, the report's clock 60 h after T0 (event clock, moved by a last lead):

| lead | owner(s) | what happens | credited to |
| --- | --- | --- | --- |
| a | rep-1 | contacted after 1 h | rep-1: follow-up within |
| b | rep-1 | contacted after 3 h | rep-1: follow-up within |
| c | rep-1 -> rep-2 at +2 h | contacted by rep-2 after 30 h | rep-2: follow-up late; breach rep-2 |
| d | rep-2 | never followed up | rep-2: open, overdue, breach rep-2 |
| e | rep-2 -> rep-3 at +30 h | never followed up | rep-3: open, overdue; breach rep-2 |
| f | (none) | contacted after 2 h | (no owner): follow-up within |
| g | rep-3 | contacted after 10 h | rep-3: follow-up within |

So rep-2 has 2 leads, 1 follow-up (late), 3 breaches, 1 open and overdue; rep-3 2 leads, 1
follow-up within, 0 breaches, 1 open and overdue; rep-1 2 follow-ups within (p50 1 h, p90
3 h); (no owner) 1 within.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas import LeadCreated, StageChanged
from stream.core.funnel import Funnel
from stream.core.leads import LeadState
from stream.core.leadstatus import lead_status
from stream.core.rules import FunnelRules
from stream.report.commands import read_owner_names
from stream.report.errors import ReportError
from stream.report.facts import Facts, _lead_facts
from stream.report.owners import owner_rows
from tests.stream.core.scenario import HOUR, at, encode, lead_payload, stage_payload

T0 = at("2026-11-02T09:00:00Z")


def created(lead_id: str, owner: str | None, team: str = "north") -> LeadCreated:
    payload = lead_payload(f"l-{lead_id}", lead_id, T0, "email", team)
    if owner is not None:
        payload["owner"] = owner
    return LeadCreated.model_validate_json(encode(payload))


def changed(lead_id: str, to: str, after: float, owner: str | None = None) -> StageChanged:
    payload = stage_payload(f"s-{lead_id}-{to}-{after}", lead_id, to, T0 + after * HOUR)
    if owner is not None:
        payload["owner"] = owner
    return StageChanged.model_validate_json(encode(payload))


def test_owner_names_are_read_from_a_local_csv(tmp_path: Path) -> None:
    names = tmp_path / "owners.csv"
    names.write_text('rep-1,Ada Lovelace\nrep-2,"Hopper, Grace"\n\n')
    assert read_owner_names(names) == {"rep-1": "Ada Lovelace", "rep-2": "Hopper, Grace"}
    assert read_owner_names(None) == {}
    with pytest.raises(ReportError, match="owner_names"):
        read_owner_names(tmp_path / "missing.csv")


def test_follow_up_by_owner_equals_the_hand_count() -> None:
    rules = FunnelRules()
    f = Funnel(rules, {}, {}, "event")
    events = [
        created("a", "rep-1"),
        changed("a", "contacted", 1),
        created("b", "rep-1"),
        changed("b", "contacted", 3),
        created("c", "rep-1"),
        changed("c", "mql", 2, owner="rep-2"),
        changed("c", "contacted", 30),
        created("d", "rep-2"),
        created("e", "rep-2"),
        changed("e", "mql", 30, owner="rep-3"),
        created("f", None),
        changed("f", "contacted", 2),
        created("g", "rep-3", team="south"),
        changed("g", "contacted", 10),
    ]
    for event in events:
        f.apply(0, event)
    # Move the partition's event clock to T0 + 60 h (both topics).
    f.apply(0, LeadCreated.model_validate_json(encode(lead_payload("l-z", "z", T0 + 60 * HOUR))))
    f.apply(0, changed("z", "disqualified", 60))
    facts = Facts()
    for lead_id in "abcdefg":
        raw = f.leads.get(lead_id)
        assert raw is not None
        _lead_facts(LeadState.decode(raw), f, facts)
    assert lead_status(LeadState.decode(f.leads.get("e") or b""), rules, T0 + 60 * HOUR).breached

    rows = {
        row.owner: (
            row.team,
            row.leads,
            row.followups,
            row.within_sla,
            row.wall.p50,
            row.wall.p90,
            row.breaches,
            row.open,
            row.overdue,
        )
        for row in owner_rows(facts.leads, {"rep-1": "Ada (rep-1)"})
    }
    assert rows == {
        "rep-2": ("north", 2, 1, 0, 30 * HOUR, 30 * HOUR, 3, 1, 1),
        "rep-3": ("north", 2, 1, 1, 10 * HOUR, 10 * HOUR, 0, 1, 1),
        "Ada (rep-1)": ("north", 2, 2, 2, 1 * HOUR, 3 * HOUR, 0, 0, 0),
        "(no owner)": ("north", 1, 1, 1, 2 * HOUR, 2 * HOUR, 0, 0, 0),
    }
    # Worst first: most breaches, then most overdue, then the lowest share within the SLA.
    assert [row.owner for row in owner_rows(facts.leads)] == [
        "rep-2",
        "rep-3",
        "(no owner)",
        "rep-1",
    ]
