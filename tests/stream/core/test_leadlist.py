"""The lead list: which open leads, in which order, with what, and the same as the gauges."""

from __future__ import annotations

import random

import pytest

from schemas import LeadCreated, StageChanged
from stream.core.funnel import Funnel
from stream.core.leadlist import list_leads
from stream.core.openindex import OpenLeadIndex
from stream.core.rules import FunnelRules
from tests.stream.core.scenario import HOUR, at, encode, lead_payload, stage_payload

RULES = FunnelRules()  # 24 h SLA, warnings at 4 h and 1 h before it
T0 = at("2026-11-20T09:00:00Z")


def created(eid: str, lead_id: str, t: float, team: str, owner: str | None) -> LeadCreated:
    payload = lead_payload(eid, lead_id, t, "email", team)
    payload["campaign"] = "spring"
    if owner is not None:
        payload["owner"] = owner
    return LeadCreated.model_validate_json(encode(payload))


def changed(eid: str, lead_id: str, to: str, t: float, owner: str | None = None) -> StageChanged:
    payload = stage_payload(eid, lead_id, to, t)
    if owner is not None:
        payload["owner"] = owner
    return StageChanged.model_validate_json(encode(payload))


def wall_funnel(now: float) -> Funnel:
    return Funnel(RULES, {}, {}, "wall", now=lambda: now)


def test_rows_are_soonest_deadline_first_with_what_the_lead_list_shows() -> None:
    now = T0 + 22 * HOUR
    f = wall_funnel(now)
    f.apply(0, created("l1", "a", T0 + 2 * HOUR, "north", "rep-1"))  # 4 h left
    f.apply(1, created("l2", "b", T0, "north", "rep-2"))  # 2 h left: at risk (4h)
    f.apply(1, changed("s2", "b", "mql", T0 + HOUR))
    f.apply(0, created("l3", "c", T0 - 3 * HOUR, "south", None))  # 1 h overdue
    f.apply(0, created("l4", "d", T0, "north", "rep-1"))
    f.apply(0, changed("s4", "d", "contacted", T0 + HOUR))  # followed up: not open
    rows = list_leads(f)
    assert [r.lead_id for r in rows] == ["c", "b", "a"]
    c, b, _ = rows
    assert (b.team, b.owner, b.source, b.campaign, b.stage) == (
        "north",
        "rep-2",
        "email",
        "spring",
        "mql",
    )
    assert (b.clock_start, b.deadline, b.seconds_left) == (T0, T0 + 24 * HOUR, 2 * HOUR)
    assert (c.owner, c.seconds_left) == (None, -HOUR)
    assert [r.lead_id for r in list_leads(f, "overdue")] == ["c"]
    assert [r.lead_id for r in list_leads(f, "at_risk")] == ["b"]  # 4h: default, the largest
    assert [r.lead_id for r in list_leads(f, "at_risk", before="1h")] == []
    assert [r.lead_id for r in list_leads(f, team="north")] == ["b", "a"]
    assert [r.lead_id for r in list_leads(f, owner="rep-1")] == ["a"]
    assert [r.lead_id for r in list_leads(f, limit=1)] == ["c"]
    with pytest.raises(ValueError, match="warn_before"):
        list_leads(f, "at_risk", before="2h")


def test_a_reassigned_lead_is_listed_under_its_new_team_and_owner() -> None:
    f = wall_funnel(T0 + HOUR)
    f.apply(0, created("l1", "a", T0, "north", "rep-1"))
    f.apply(0, changed("s1", "a", "mql", T0 + 0.5 * HOUR, owner="rep-9"))
    assert list_leads(f, owner="rep-1") == []
    assert [r.owner for r in list_leads(f, team="north")] == ["rep-9"]


@pytest.mark.parametrize("seed", range(5))
def test_the_list_holds_exactly_the_leads_the_gauges_count_live_and_rebuilt(seed: int) -> None:
    rng = random.Random(seed)
    leads: dict[str, bytes] = {}
    now = T0 + 30 * HOUR
    f = Funnel(RULES, leads, {}, "wall", now=lambda: now)
    for i in range(300):
        t = T0 + rng.uniform(0, 30 * HOUR)
        team, owner = rng.choice(["north", "south"]), rng.choice(["rep-1", "rep-2", None])
        f.apply(i % 4, created(f"l{i}", f"lead-{i}", t, team, owner))
        if rng.random() < 0.3:
            f.apply(
                i % 4, changed(f"s{i}", f"lead-{i}", "contacted", t + rng.uniform(0, 30 * HOUR))
            )
        if rng.random() < 0.2:
            f.apply(i % 4, changed(f"o{i}", f"lead-{i}", "mql", t + HOUR, owner="rep-3"))
    rebuilt = Funnel(RULES, leads, {}, "wall", now=lambda: now)
    rebuilt.rebuild(range(4), ())
    for funnel in (f, rebuilt):
        gauges = funnel.followup_gauges()
        for team, gauge in gauges.items():
            assert len(list_leads(funnel, team=team, limit=10_000)) == gauge.awaiting
            assert len(list_leads(funnel, "overdue", team=team, limit=10_000)) == gauge.overdue
            for label in ("4h", "1h"):
                listed = list_leads(funnel, "at_risk", team=team, before=label, limit=10_000)
                assert len(listed) == gauge.at_risk.get(label, 0)
        rows = list_leads(funnel, limit=10_000)
        assert [r.deadline for r in rows] == sorted(r.deadline for r in rows)
    assert list_leads(f, limit=10_000) == list_leads(rebuilt, limit=10_000)


def test_stuck_leads_longest_stuck_first_with_when_they_entered_the_stage() -> None:
    rules = FunnelRules(stuck_after=(("mql", 2 * HOUR), ("sql", 4 * HOUR)))
    now = T0 + 10 * HOUR
    f = Funnel(rules, {}, {}, "wall", now=lambda: now)
    f.apply(0, created("l1", "a", T0, "north", "rep-1"))
    f.apply(0, changed("s1", "a", "mql", T0 + HOUR))  # stuck from T0 + 3 h
    f.apply(1, created("l2", "b", T0, "south", None))
    f.apply(1, changed("s2", "b", "mql", T0 + 5 * HOUR))  # stuck from T0 + 7 h
    f.apply(1, created("l3", "c", T0, "north", "rep-2"))
    f.apply(1, changed("s3", "c", "sql", T0 + 5 * HOUR))  # stuck from T0 + 9 h
    f.apply(0, created("l4", "d", T0, "north", None))
    f.apply(0, changed("s4", "d", "mql", T0 + 8 * HOUR))  # in mql, not stuck yet
    rows = list_leads(f, "stuck")
    assert [(r.lead_id, r.stage, r.clock_start, r.deadline, r.seconds_left) for r in rows] == [
        ("a", "mql", T0 + HOUR, T0 + 3 * HOUR, -7 * HOUR),
        ("b", "mql", T0 + 5 * HOUR, T0 + 7 * HOUR, -3 * HOUR),
        ("c", "sql", T0 + 5 * HOUR, T0 + 9 * HOUR, -HOUR),
    ]
    assert [r.lead_id for r in list_leads(f, "stuck", stage="sql")] == ["c"]
    assert [r.lead_id for r in list_leads(f, "stuck", team="north")] == ["a", "c"]
    assert [r.lead_id for r in list_leads(f, "stuck", owner="rep-1")] == ["a"]
    f.apply(0, changed("s5", "a", "sql", T0 + 9 * HOUR))  # moved on: no longer stuck
    assert [r.lead_id for r in list_leads(f, "stuck")] == ["b", "c"]
    # mql: b (stuck) and d; sql: c (stuck) and a (since T0 + 9 h, stuck from T0 + 13 h).
    assert {s: g for s, g in f.stage_gauges().items() if g != (0, 0)} == {
        "mql": (2, 1),
        "sql": (2, 1),
    }
    with pytest.raises(ValueError, match="funnel stage"):
        list_leads(f, "stuck", stage="contacted")


def test_the_index_removes_what_it_added_and_keeps_order() -> None:
    index = OpenLeadIndex()
    index.add("north", "rep-1", 20.0, "b")
    index.add("north", None, 10.0, "a")
    index.add("south", "rep-1", 10.0, "c")
    assert [lead.lead_id for _, lead in index.from_deadline(None)] == ["a", "c", "b"]
    assert [lead.lead_id for _, lead in index.from_deadline(15.0)] == ["b"]
    assert [lead.lead_id for _, lead in index.from_deadline(None, owner="rep-1")] == ["c", "b"]
    index.remove("north", None, 10.0, "a")
    assert len(index) == 2
    assert [lead.lead_id for _, lead in index.from_deadline(None, team="north")] == ["b"]
