"""A partition's open leads (``OpenLeads``) against a plain list of leads and their instants."""

from __future__ import annotations

from collections import Counter
from datetime import time

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.calendar import BusinessCalendar
from stream.core.leadstatus import OpenLead
from stream.core.openleads import OpenLeads
from stream.core.rules import FunnelRules
from tests.stream.core.scenario import HOUR, at

T0 = at("2026-11-20T09:00:00Z")
OFFICE = BusinessCalendar.from_names(
    "Europe/Berlin", ["mon", "tue", "wed", "thu", "fri"], time(9), time(17)
)
RULES = (
    FunnelRules(),
    FunnelRules(breach_grace=2 * HOUR, warn_before=(("2h", 2 * HOUR), ("30h", 30 * HOUR))),
    FunnelRules(calendar=OFFICE, followup_within=8 * HOUR),
    FunnelRules(warn_before=()),
)
TEAMS = ("north", "south")


def opened(rules: FunnelRules, start: float, teams: tuple[str, ...], owner: str | None) -> OpenLead:
    labels = rules.warn_before
    warnings = tuple(
        (label, rules.warning_time(start, before), teams[2 + i % 2])
        for i, (label, before) in enumerate(labels)
    )
    return OpenLead(teams[0], start, rules.deadline(start), teams[1], warnings, owner)


def expected(leads: dict[str, OpenLead], clock: float) -> tuple[Counter, Counter, Counter]:
    awaiting: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    at_risk: Counter[tuple[str, str]] = Counter()
    for lead in leads.values():
        awaiting[lead.team] += 1
        if clock > lead.breach_at:
            overdue[lead.team] += 1
        else:
            for label, instant, _ in lead.warnings:
                if clock > instant:
                    at_risk[(lead.team, label)] += 1
    return awaiting, overdue, at_risk


def passed(leads: dict[str, OpenLead], before: float, after: float) -> tuple[Counter, Counter]:
    """What moving the clock from ``before`` to ``after`` passes: warnings and breaches."""
    warnings: Counter[tuple[str, str]] = Counter()
    breaches: Counter[str] = Counter()
    for lead in leads.values():
        for label, instant, team in lead.warnings:
            if before <= instant < after:
                warnings[(team, label)] += 1
        if before <= lead.breach_at < after:
            breaches[lead.breach_team] += 1
    return warnings, breaches


def positive(counter: Counter) -> dict:
    return {k: n for k, n in counter.items() if n}


operation = st.one_of(
    st.tuples(
        st.just("add"),
        st.integers(0, 40),  # start, in hours from T0 (ties on purpose)
        st.tuples(*[st.sampled_from(TEAMS)] * 4),
        st.sampled_from([None, "rep-1", "rep-2"]),
    ),
    st.tuples(st.just("remove"), st.integers(0, 1000)),
    st.tuples(st.just("advance"), st.integers(0, 60).map(lambda n: n * HOUR / 2)),  # ties too
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(RULES), st.lists(operation, max_size=60), st.integers(0, 60), st.booleans())
def test_counts_passes_and_lists_as_the_leads_say(
    rules: FunnelRules, operations: list, load_first: int, loaded: bool
) -> None:
    table, leads, clock, serial = OpenLeads(rules), {}, T0, 0
    if loaded:  # the first additions as a rebuild makes them, at a clock set before counting
        table.begin_load()
    for i, op in enumerate(operations):
        if loaded and i == load_first:
            table.end_load(clock)
            loaded = False
        if op[0] == "add":
            serial += 1
            lead = opened(rules, T0 + op[1] * HOUR + (serial % 3) * 0.5, op[2], op[3])
            leads[f"lead-{serial}"] = lead
            table.add(f"lead-{serial}", lead, clock)
        elif op[0] == "remove" and leads:
            lead_id = sorted(leads)[op[1] % len(leads)]
            if loaded:
                continue
            table.remove(lead_id, leads.pop(lead_id), clock)
        elif op[0] == "advance" and not loaded:
            new = clock + op[1]
            warnings, breaches = table.advance(new)
            assert (Counter(warnings), Counter(breaches)) == passed(leads, clock, new)
            clock = new
        if loaded:
            continue
        awaiting, overdue, at_risk = expected(leads, clock)
        assert positive(table.awaiting) == positive(awaiting)
        assert positive(table.overdue) == positive(overdue)
        assert positive(table.at_risk) == positive(at_risk)
    if loaded:
        table.end_load(clock)
    awaiting, overdue, at_risk = expected(leads, clock)
    assert (positive(table.awaiting), positive(table.at_risk)) == (
        positive(awaiting),
        positive(at_risk),
    )
    order = sorted(leads, key=lambda k: (leads[k].breach_at, k.encode()))
    assert [lead.lead_id for _, lead in table.from_deadline(None)] == order
    due = [k for k in order if leads[k].breach_at >= clock]
    assert [lead.lead_id for _, lead in table.from_deadline(clock)] == due
    for team in TEAMS:
        mine = [k for k in order if leads[k].team == team]
        assert [lead.lead_id for _, lead in table.from_deadline(None, team)] == mine
        starts = [leads[k].clock_start for k in mine]
        assert table.oldest_start(team) == (min(starts) if starts else None)
    rep = [k for k in order if leads[k].owner == "rep-1"]
    assert [lead.lead_id for _, lead in table.from_deadline(None, owner="rep-1")] == rep
    assert len(table) == len(leads)
