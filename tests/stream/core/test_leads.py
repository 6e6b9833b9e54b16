"""One lead's state and status: first entries, the follow-up clock, teams, holds, deadlines.

These drive ``stream.core.leads`` directly (no ``Funnel``), with hand-computed expectations,
and one property: a follow-up is within the SLA exactly when it is no breach.
"""

from __future__ import annotations

import json
from datetime import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.bounds import forget_old_ids
from stream.core.calendar import BusinessCalendar
from stream.core.effects import Effects, FollowUp
from stream.core.leads import DEFAULT_TEAM, LeadState, record_lead_created, record_stage_changed
from stream.core.leadstatus import LeadStatus, OpenLead, lead_status, new_status
from stream.core.rules import FunnelRules
from tests.stream.core.scenario import HOUR, at

RULES = FunnelRules()
T0 = at("2026-11-20T09:00:00Z")  # a Friday
MINUTE = 60.0
# Monday to Friday, 09:00-17:00 UTC: 8 business hours a day.
OFFICE = BusinessCalendar.from_names("UTC", ["mon", "tue", "wed", "thu", "fri"], time(9), time(17))
OFFICE_RULES = FunnelRules(calendar=OFFICE, followup_within=8 * HOUR)


class Lead:
    """A lead's state with the effects its events produced, at a clock the test sets."""

    def __init__(self, rules: FunnelRules = RULES, clock: float = 0.0) -> None:
        self.rules = rules
        self.clock = clock
        self.state = LeadState(partition=0)
        self.effects = Effects()

    def created(
        self,
        event_id: str,
        t: float,
        source: str = "organic",
        team: str = "north",
        owner: str | None = None,
        campaign: str | None = None,
    ) -> None:
        before = lead_status(self.state, self.rules, self.clock)
        record_lead_created(
            self.state, event_id, t, source, team, self.rules, before.released, self.effects,
            campaign, owner,
        )  # fmt: skip
        new_status(self.state, self.rules, self.clock, before, self.effects)

    def changed(
        self,
        event_id: str,
        to_stage: str,
        t: float,
        team: str | None = None,
        owner: str | None = None,
    ) -> None:
        before = lead_status(self.state, self.rules, self.clock)
        record_stage_changed(
            self.state, event_id, t, to_stage, team, before.released, self.effects, owner
        )
        new_status(self.state, self.rules, self.clock, before, self.effects)

    def status(self, clock: float | None = None) -> LeadStatus:
        return lead_status(self.state, self.rules, self.clock if clock is None else clock)


class TestState:
    def test_encode_decode_round_trip(self) -> None:
        lead = Lead()
        lead.created("l1", T0, "email", "north")
        lead.changed("s1", "mql", T0 + HOUR, team="south")
        lead.changed("s2", "mql", T0 + 2 * HOUR)
        assert LeadState.decode(lead.state.encode()) == lead.state
        assert LeadState.decode(lead.state.encode()).teams == [(T0, "north"), (T0 + HOUR, "south")]

    def test_first_entry_is_the_earliest_whatever_the_order(self) -> None:
        lead = Lead()
        lead.created("l1", T0)
        lead.changed("s2", "mql", T0 + 3 * HOUR)
        lead.changed("s1", "mql", T0 + HOUR)  # arrives later, happened earlier
        assert lead.state.first_entry("mql") == T0 + HOUR
        assert lead.state.entries["mql"] == [T0 + HOUR, T0 + 3 * HOUR]
        assert lead.state.first_entry("sql") is None
        # One entry, one re-entry, in whichever order they came.
        assert lead.effects.entries == [("lead", "organic"), ("mql", "organic")]
        assert lead.effects.reentries == ["mql"]

    def test_team_follows_overrides_from_their_time_on(self) -> None:
        lead = Lead()
        lead.created("l1", T0, team="north")
        lead.changed("s1", "mql", T0 + 2 * HOUR, team="south")
        assert lead.state.team_at(T0 - HOUR) == "north"  # before the lead: its own team
        assert lead.state.team_at(T0 + HOUR) == "north"
        assert lead.state.team_at(T0 + 2 * HOUR) == "south"
        assert lead.state.current_team == "south"

    def test_a_lead_without_team_events_belongs_to_the_default_team(self) -> None:
        state = LeadState(partition=0)
        assert state.current_team == DEFAULT_TEAM == "default"
        assert state.team_at(T0) == "default"

    def test_before_the_lead_and_its_overrides_the_lead_keeps_its_own_team(self) -> None:
        # An override counts from its own time on, even when it is stamped before the lead:
        # a stop stamped before both (clock skew) is still the lead's own team's. (The core
        # used to give it the team of the earliest assignment, here the override.)
        lead = Lead()
        lead.changed("s1", "mql", T0 - 10 * MINUTE, team="south")
        lead.created("l1", T0, team="north")
        assert lead.state.team_at(T0 - 20 * MINUTE) == "north"
        assert lead.state.team_at(T0 - 10 * MINUTE) == "south"
        assert lead.state.team_at(T0) == "north"

    def test_an_orphan_is_the_default_teams_until_an_override(self) -> None:
        # events.md: a lead that never arrives belongs to ``default``; an override applies
        # from its event on, not before. (The core used to give the whole orphan to the
        # team of its first override.)
        lead = Lead()
        lead.changed("s1", "sql", T0 + HOUR, team="south")
        assert lead.state.team_at(T0) == "default"
        assert lead.state.team_at(T0 + HOUR) == "south"

    def test_a_second_lead_created_is_a_reentry_not_a_reassignment(self) -> None:
        # A re-submitted form for a north lead, without a team field: it reads "default".
        # (The core used to move the lead to that team from the second event on.)
        lead = Lead()
        lead.created("l1", T0, "email", "north")
        lead.created("l2", T0 + HOUR, "organic", "default")
        assert lead.state.current_team == "north"
        assert lead.effects.entries == [("lead", "email")]
        assert lead.effects.reentries == ["lead"]
        lead.changed("s1", "contacted", T0 + 2 * HOUR)
        assert lead.effects.followups == [FollowUp("north", 7200.0, None, True, False)]

    def test_the_earliest_lead_created_gives_team_and_source_whatever_the_order(self) -> None:
        lead = Lead()
        lead.created("l2", T0 + HOUR, "organic", "south")
        lead.created("l1", T0, "email", "north")  # read later, happened first
        assert (lead.state.created_at, lead.state.source, lead.state.team) == (T0, "email", "north")
        assert lead.state.teams == [(T0, "north")]
        assert lead.state.team_at(T0 + 2 * HOUR) == "north"

    def test_reads_states_stored_before_the_lead_team_was_kept(self) -> None:
        old = b'[3,1795165200.0,"email",[[1795165200.0,"north"],[1795168800.0,"south"]],'
        old += b'{"lead":[1795165200.0],"mql":[1795168800.0]},{"l1":1795165200.0},'
        old += b"1795165200.0,1795168800.0]"
        state = LeadState.decode(old)
        assert state.team == "north"
        assert state.current_team == "south"
        assert LeadState.decode(state.encode()) == state

    def test_reads_states_stored_before_campaign_and_owners_were_kept(self) -> None:
        old = b'[3,1795165200.0,"email",[[1795165200.0,"north"]],{"lead":[1795165200.0]},'
        old += b'{"l1":1795165200.0},1795165200.0,0.0,"north"]'
        state = LeadState.decode(old)
        assert (state.campaign, state.owners, state.current_owner) == (None, [], None)
        # Nothing more is written for a lead without them: the ten fields of the bounded state.
        assert len(json.loads(state.encode())) == 10

    def test_campaign_and_owners_round_trip(self) -> None:
        lead = Lead()
        lead.created("l1", T0, owner="rep-1", campaign="spring")
        lead.changed("s1", "mql", T0 + HOUR, owner="rep-2")
        decoded = LeadState.decode(lead.state.encode())
        assert decoded == lead.state
        assert (decoded.campaign, decoded.owners) == (
            "spring",
            [(T0, "rep-1"), (T0 + HOUR, "rep-2")],
        )

    def test_owner_follows_stage_changes_from_their_time_on(self) -> None:
        lead = Lead()
        lead.changed("s1", "mql", T0 + 2 * HOUR, owner="rep-2")
        lead.created("l1", T0, owner="rep-1")  # arrives late: its owner holds from T0
        assert lead.state.owner_at(T0 - HOUR) == "rep-1"  # before any: the lead's own owner
        assert lead.state.owner_at(T0 + HOUR) == "rep-1"
        assert lead.state.owner_at(T0 + 3 * HOUR) == "rep-2"
        assert lead.state.current_owner == "rep-2"

    def test_the_earliest_lead_created_gives_the_owner(self) -> None:
        lead = Lead()
        lead.created("l2", T0 + HOUR, owner="rep-late", campaign="late")
        lead.created("l1", T0, owner="rep-first", campaign="first")
        assert lead.state.owners == [(T0, "rep-first")]
        assert lead.state.campaign == "first"

    def test_forget_old_ids_drops_only_ids_before_the_horizon(self) -> None:
        lead = Lead()
        lead.created("l1", T0)
        lead.changed("s1", "mql", T0 + HOUR)
        forget_old_ids(lead.state, T0 + 1)
        assert lead.state.seen == {"s1": T0 + HOUR}
        assert lead.state.entries == {"lead": [T0], "mql": [T0 + HOUR]}  # facts stay


class TestFollowUp:
    def test_latency_from_lead_to_first_follow_up_stage(self) -> None:
        lead = Lead()
        lead.created("l1", T0, team="north")
        lead.changed("s1", "mql", T0 + HOUR)  # not a follow-up stage
        assert lead.effects.followups == []
        lead.changed("s2", "contacted", T0 + 90 * MINUTE)
        lead.changed("s3", "sql", T0 + 2 * HOUR)  # a later stop: no second follow-up
        assert lead.effects.followups == [FollowUp("north", 5400.0, None, True, False)]
        assert lead.effects.breaches == []

    def test_latency_is_recorded_the_moment_the_lead_arrives_after_its_stop(self) -> None:
        lead = Lead()
        lead.changed("s1", "contacted", T0 + 30 * MINUTE)
        assert lead.status() == LeadStatus(False, None, False, None, T0 + 30 * MINUTE + HOUR)
        assert lead.effects.entries == []  # held: not counted
        lead.created("l1", T0, "paid_search", "south")
        assert lead.effects.followups == [FollowUp("south", 1800.0, None, True, False)]
        assert sorted(lead.effects.entries) == [
            ("contacted", "paid_search"),
            ("lead", "paid_search"),
        ]

    def test_stop_before_start_is_clock_skew_with_latency_zero(self) -> None:
        lead = Lead()
        lead.created("l1", T0)
        lead.changed("s1", "contacted", T0 - 5 * MINUTE)
        assert lead.effects.followups == [FollowUp("north", 0.0, None, True, True)]

    def test_exactly_at_the_sla_is_within_one_second_later_is_a_breach(self) -> None:
        on_time, late = Lead(), Lead()
        for lead in (on_time, late):
            lead.created("l1", T0)
        on_time.changed("s1", "contacted", T0 + 24 * HOUR)
        late.changed("s1", "contacted", T0 + 24 * HOUR + 1)
        assert on_time.effects.followups == [FollowUp("north", 86400.0, None, True, False)]
        assert on_time.effects.breaches == []
        assert late.effects.followups == [FollowUp("north", 86401.0, None, False, False)]
        assert late.effects.breaches == ["north"]

    def test_the_follow_up_belongs_to_the_team_at_its_stop(self) -> None:
        lead = Lead()
        lead.created("l1", T0, team="north")
        lead.changed("s1", "mql", T0 + HOUR, team="south")
        lead.changed("s2", "contacted", T0 + 2 * HOUR)
        assert [f.team for f in lead.effects.followups] == ["south"]

    def test_clock_can_start_at_mql(self) -> None:
        lead = Lead(FunnelRules(clock_starts_at="mql"))
        lead.created("l1", T0)
        assert lead.status().open is None  # no clock before the lead is an mql
        lead.changed("s1", "mql", T0 + HOUR)
        # At risk 4 h and 1 h before the deadline (24 h after the mql).
        warnings = (("4h", T0 + 21 * HOUR, "north"), ("1h", T0 + 24 * HOUR, "north"))
        assert lead.status().open == OpenLead("north", T0 + HOUR, T0 + 25 * HOUR, "north", warnings)
        lead.changed("s2", "sql", T0 + 3 * HOUR)
        assert lead.effects.followups == [FollowUp("north", 7200.0, None, True, False)]


class TestBreach:
    def test_open_lead_breaches_only_once_the_clock_is_past_deadline_and_grace(self) -> None:
        lead = Lead(FunnelRules(breach_grace=HOUR))
        lead.created("l1", T0)
        deadline = T0 + 25 * HOUR  # 24 h SLA + 1 h grace
        # Warnings count from the deadline itself (T0 + 24 h), not from the grace's end.
        warnings = (("4h", T0 + 20 * HOUR, "north"), ("1h", T0 + 23 * HOUR, "north"))
        assert lead.status(deadline).open == OpenLead("north", T0, deadline, "north", warnings)
        assert not lead.status(deadline).breached
        assert lead.status(deadline + 1).breached

    def test_a_follow_up_inside_the_grace_is_late_but_not_a_breach(self) -> None:
        lead = Lead(FunnelRules(breach_grace=HOUR))
        lead.created("l1", T0)
        lead.changed("s1", "contacted", T0 + 24 * HOUR + 30 * MINUTE)
        assert lead.effects.followups == [FollowUp("north", 88200.0, None, False, False)]
        assert lead.effects.breaches == []

    def test_a_breach_is_the_team_that_owned_the_lead_at_the_deadline(self) -> None:
        # Reassigned after its deadline passed: the breach is still north's, the late
        # follow-up south's. (The core used to give the breach to whichever team owned the
        # lead when the breach was noticed, so the figure depended on arrival order.)
        lead = Lead()
        lead.created("l1", T0, team="north")
        lead.changed("s1", "mql", T0 + 30 * HOUR, team="south")
        status = lead.status(T0 + 31 * HOUR)
        warnings = (("4h", T0 + 20 * HOUR, "north"), ("1h", T0 + 23 * HOUR, "north"))
        assert status.open == OpenLead("south", T0, T0 + 24 * HOUR, "north", warnings)
        assert status.breached
        lead.changed("s2", "contacted", T0 + 32 * HOUR)
        assert lead.effects.followups == [FollowUp("south", 32 * HOUR, None, False, False)]
        assert lead.effects.breaches == ["north"]

    def test_the_follow_up_and_the_breach_are_each_their_owners(self) -> None:
        # Reassigned from rep-1 to rep-2 after the deadline: the breach is rep-1's (owner at
        # the deadline), the late follow-up rep-2's (owner at the follow-up).
        lead = Lead()
        lead.created("l1", T0, owner="rep-1")
        lead.changed("s1", "mql", T0 + 30 * HOUR, owner="rep-2")
        status = lead.status(T0 + 31 * HOUR)
        assert status.open is not None and status.open.owner == "rep-2"
        assert status.breach_owner == "rep-1"
        lead.changed("s2", "contacted", T0 + 32 * HOUR)
        (followup,) = lead.effects.followups
        assert followup.owner == "rep-2"
        assert lead.status(T0 + 33 * HOUR).breach_owner == "rep-1"

    def test_a_late_follow_up_after_a_declared_breach_is_no_second_breach(self) -> None:
        lead = Lead()
        lead.created("l1", T0)
        lead.clock = T0 + 25 * HOUR  # the clock has passed the deadline: breach declared
        assert lead.status().breached
        lead.changed("s1", "contacted", T0 + 26 * HOUR)
        assert lead.effects.followups == [FollowUp("north", 93600.0, None, False, False)]
        assert lead.effects.breaches == []  # the breach was the clock's, not this event's


class TestHeld:
    def test_held_until_the_orphan_hold_then_released_on_its_own(self) -> None:
        lead = Lead()
        lead.changed("s2", "sql", T0 + HOUR)
        lead.changed("s1", "mql", T0)  # the earliest held change sets the hold
        assert lead.status(T0 + HOUR).held_until == T0 + HOUR
        assert not lead.status(T0 + HOUR).released
        released = lead.status(T0 + HOUR + 1)
        assert released.released
        assert released.held_until is None
        assert released.open is None  # no lead stage: no follow-up clock
        assert lead.effects == Effects()  # nothing counted while held


class TestBusinessHours:
    def test_latency_in_wall_and_business_seconds(self) -> None:
        lead = Lead(OFFICE_RULES)
        lead.created("l1", at("2026-11-20T15:00:00Z"))  # Friday 15:00
        lead.changed("s1", "contacted", at("2026-11-23T14:00:00Z"))  # Monday 14:00
        # 71 h of wall time; 2 h on Friday + 5 h on Monday of business time.
        assert lead.effects.followups == [FollowUp("north", 71 * HOUR, 7 * HOUR, True, False)]

    def test_deadline_follows_the_calendar(self) -> None:
        lead = Lead(OFFICE_RULES)
        lead.created("l1", at("2026-11-20T15:00:00Z"))  # Friday 15:00
        monday_15 = at("2026-11-23T15:00:00Z")  # 2 h Friday + 6 h Monday
        # 4 h left after 2 h on Friday and 2 h on Monday; 1 h left at Monday 14:00.
        warnings = (
            ("4h", at("2026-11-23T11:00:00Z"), "north"),
            ("1h", at("2026-11-23T14:00:00Z"), "north"),
        )
        assert lead.status().open == OpenLead(
            "north", at("2026-11-20T15:00:00Z"), monday_15, "north", warnings
        )
        assert not lead.status(at("2026-11-22T23:00:00Z")).breached  # the weekend is free
        assert lead.status(monday_15 + 1).breached

    def test_a_follow_up_after_closing_on_the_last_sla_day_meets_the_sla(self) -> None:
        # The SLA ends exactly at Friday's closing; no business time passes until Monday
        # 09:00, so a follow-up on Friday evening used exactly 8 business hours: within the
        # SLA, and no breach. (The core used to put the deadline at Friday 17:00 and count
        # this as within the SLA *and* as a breach.)
        lead = Lead(OFFICE_RULES)
        lead.created("l1", at("2026-11-20T09:00:00Z"))  # Friday 09:00
        warnings = (
            ("4h", at("2026-11-20T13:00:00Z"), "north"),
            ("1h", at("2026-11-20T16:00:00Z"), "north"),
        )
        assert lead.status().open == OpenLead(
            "north", at("2026-11-20T09:00:00Z"), at("2026-11-23T09:00:00Z"), "north", warnings
        )
        lead.changed("s1", "contacted", at("2026-11-20T20:00:00Z"))
        assert lead.effects.followups == [FollowUp("north", 11 * HOUR, 8 * HOUR, True, False)]
        assert lead.effects.breaches == []

    def test_a_follow_up_one_business_second_late_is_a_breach(self) -> None:
        lead = Lead(OFFICE_RULES)
        lead.created("l1", at("2026-11-20T09:00:00Z"))
        lead.changed("s1", "contacted", at("2026-11-23T09:00:01Z"))  # Monday
        assert lead.effects.followups == [
            FollowUp("north", 72 * HOUR + 1, 8 * HOUR + 1, False, False)
        ]
        assert lead.effects.breaches == ["north"]


@pytest.mark.parametrize("clock", [0.0, T0 + 30 * HOUR])
def test_a_lead_arriving_after_its_deadline_passed_breaches_once(clock: float) -> None:
    lead = Lead(clock=clock)
    lead.created("l1", T0, team="south")
    expected = ["south"] if clock > T0 + 24 * HOUR else []
    assert lead.effects.breaches == expected
    assert lead.status().breached is bool(expected)


MADRID_OFFICE = BusinessCalendar.from_names(
    "Europe/Madrid", ["mon", "tue", "wed", "thu", "fri"], time(9), time(17, 30)
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    rules=st.sampled_from(
        [
            RULES,
            FunnelRules(calendar=MADRID_OFFICE, followup_within=8 * HOUR),
            FunnelRules(calendar=MADRID_OFFICE, followup_within=30 * HOUR),
        ]
    ),
    start_ms=st.integers(0, 40 * 86_400_000),  # 2026-03-20 + 40 days: a DST change inside
    latency_ms=st.integers(-1_000_000, 6 * 86_400_000),
    at_deadline=st.booleans(),
)
def test_a_follow_up_is_within_the_sla_exactly_when_it_is_no_breach(
    rules: FunnelRules, start_ms: int, latency_ms: int, at_deadline: bool
) -> None:
    start = at("2026-03-20T00:00:00Z") + start_ms / 1000
    if at_deadline:  # a millisecond before, at, or after the deadline
        stop = rules.deadline(start) + (latency_ms % 3 - 1) / 1000
    else:
        stop = start + latency_ms / 1000
    lead = Lead(rules)
    lead.created("l1", start)
    lead.changed("s1", "contacted", stop)
    [followup] = lead.effects.followups
    assert lead.effects.breaches == ([] if followup.within_sla else ["north"])
