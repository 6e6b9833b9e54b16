"""The funnel as users see it: entries, re-entries, follow-ups, breaches, gauges and windows.

Every test drives ``Funnel`` with parsed events and checks hand-computed numbers. In
``event`` mode each lead partition has its own clock, the lower of its ``lead_created`` and
``stage_changed`` watermarks; ``tick`` moves it with a throw-away lead (team and source
``tick``), whose own effects the helpers leave out.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import time

import pytest

from schemas import REJECT_REASONS, Rejection, classify
from stream.core.bounds import dedupe_key
from stream.core.calendar import BusinessCalendar
from stream.core.effects import FollowUp
from stream.core.eventtime import event_seconds
from stream.core.funnel import ClockMode, FollowupGauge, Funnel
from stream.core.leads import LeadState
from stream.core.rules import FunnelRules
from stream.core.windows import parse_window
from tests.stream.core.scenario import (
    DAY,
    HOUR,
    Message,
    Scenario,
    at,
    hand_built_scenario,
    lead,
    stage,
    visit,
)

RULES = FunnelRules()
T0 = at("2026-11-20T09:00:00Z")  # a Friday
MINUTE = 60.0
TICK = "tick"


def funnel(
    rules: FunnelRules = RULES, mode: ClockMode = "event", now: float = 0.0
) -> tuple[Funnel, dict[str, bytes], dict[str, bytes]]:
    """A funnel over fresh dict stores (returned too, to rebuild from them)."""
    leads: dict[str, bytes] = {}
    visitors: dict[str, bytes] = {}
    return Funnel(rules, leads, visitors, mode, now=lambda: now), leads, visitors


def tick(f: Funnel, t: float, partition: int = 0) -> None:
    """Move the event clock of a lead partition to ``t`` (both of its watermarks)."""
    lead_id = f"{TICK}-{partition}-{t}"
    assert f.apply(partition, lead(f"{lead_id}-l", lead_id, t, TICK, TICK)) == "applied"
    assert f.apply(partition, stage(f"{lead_id}-s", lead_id, "disqualified", t)) == "applied"


def breaches(f: Funnel) -> list[str]:
    return [team for team in f.effects.breaches if team != TICK]


def followups(f: Funnel) -> list[FollowUp]:
    return [u for u in f.effects.followups if u.team != TICK]


def entries(f: Funnel) -> Counter[tuple[str, str]]:
    return Counter({e: n for e, n in f.effects.entry_counts().items() if e[1] != TICK})


def gauges(f: Funnel) -> dict[str, FollowupGauge]:
    return {team: g for team, g in f.followup_gauges().items() if team != TICK}


def nonzero(windows: dict[tuple[str, str, str], int]) -> dict[tuple[str, str, str], int]:
    return {key: n for key, n in windows.items() if n}


def warnings(f: Funnel) -> list[tuple[str, str]]:
    return [w for w in f.effects.warnings if w[0] != TICK]


class TestWarnings:
    """At risk 4 h and 1 h before the deadline (the default ``warn_before``), 24 h SLA."""

    def test_counted_at_the_instant_once_and_the_lead_leaves_when_followed_up(self) -> None:
        f, _, _ = funnel(mode="wall", now=T0)
        f.apply(0, lead("l1", "a", T0, team="north"))
        f.advance(T0 + 20 * HOUR)  # exactly 4 h left: not yet
        assert warnings(f) == [] and gauges(f)["north"].at_risk == {}
        f.advance(T0 + 20 * HOUR + 1)
        assert warnings(f) == [("north", "4h")]
        assert gauges(f)["north"].at_risk == {"4h": 1}
        f.advance(T0 + 22 * HOUR)
        assert warnings(f) == [("north", "4h")]  # once
        f.apply(0, stage("s1", "a", "contacted", T0 + 22 * HOUR))
        assert gauges(f) == {}
        f.advance(T0 + 30 * HOUR)
        assert warnings(f) == [("north", "4h")]  # the 1 h warning never came
        assert breaches(f) == []

    def test_at_risk_until_the_breach_then_overdue(self) -> None:
        f, _, _ = funnel(mode="wall", now=T0)
        f.apply(0, lead("l1", "a", T0, team="north"))
        f.advance(T0 + 23 * HOUR + 1)
        assert warnings(f) == [("north", "4h"), ("north", "1h")]
        assert gauges(f)["north"] == FollowupGauge(1, 0, T0, {"4h": 1, "1h": 1})
        f.advance(T0 + 24 * HOUR + 1)
        assert breaches(f) == ["north"]
        assert gauges(f)["north"] == FollowupGauge(1, 1, T0)

    def test_a_lead_read_inside_its_warning_is_counted_on_arrival(self) -> None:
        f, _, _ = funnel(mode="wall", now=T0 + 21 * HOUR)
        f.apply(0, lead("l1", "a", T0, team="north"))
        assert warnings(f) == [("north", "4h")]
        assert gauges(f)["north"].at_risk == {"4h": 1}

    def test_a_lead_moved_to_another_team_moves_its_risk(self) -> None:
        f, _, _ = funnel(mode="wall", now=T0)
        f.apply(0, lead("l1", "a", T0, team="north"))
        f.advance(T0 + 21 * HOUR)
        f.apply(0, stage("s1", "a", "mql", T0 + 21 * HOUR, team="south"))
        assert gauges(f) == {"south": FollowupGauge(1, 0, T0, {"4h": 1})}
        # The 1 h warning comes while the lead is south's: it is south's warning.
        f.advance(T0 + 23 * HOUR + 1)
        assert warnings(f) == [("north", "4h"), ("south", "1h")]
        assert gauges(f) == {"south": FollowupGauge(1, 0, T0, {"4h": 1, "1h": 1})}

    def test_on_the_event_clock_when_the_partition_passes_it(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0, team="north"))
        tick(f, T0 + 20 * HOUR + 1, partition=1)  # another partition's clock: no warning
        assert warnings(f) == []
        tick(f, T0 + 20 * HOUR + 1)
        assert warnings(f) == [("north", "4h")]

    def test_a_calendar_counts_business_time_left(self) -> None:
        rules = FunnelRules(calendar=TestBusinessHours.OFFICE, followup_within=8 * HOUR)
        f, _, _ = funnel(rules, mode="wall", now=at("2026-11-20T15:00:00Z"))
        f.apply(0, lead("l1", "a", at("2026-11-20T15:00:00Z"), team="north"))  # Friday 15:00
        # Deadline Monday 15:00 (2 h Friday, 6 h Monday): 4 h left at Monday 11:00.
        f.advance(at("2026-11-23T11:00:00Z"))
        assert warnings(f) == []
        f.advance(at("2026-11-23T11:00:01Z"))
        assert warnings(f) == [("north", "4h")]


def stage_times(f: Funnel) -> list[tuple[str, str, float]]:
    return sorted(f.effects.stage_times)


class TestStageTimes:
    """From a first entry to the next funnel stage reached, once the partition's event clock
    has passed the later entry by ``orphan_hold`` (1 h by default)."""

    def test_each_step_and_the_whole_way_once_final(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0, team="north"))
        f.apply(0, stage("s1", "a", "mql", T0 + 2 * HOUR))
        f.apply(0, stage("s2", "a", "sql", T0 + 5 * HOUR))
        f.apply(0, stage("s3", "a", "customer", T0 + 30 * HOUR))
        tick(f, T0 + 3 * HOUR + 1)  # 1 h past the mql: lead -> mql is final
        assert stage_times(f) == [("lead", "mql", 2 * HOUR)]
        tick(f, T0 + 40 * HOUR)
        assert stage_times(f) == [
            ("lead", "customer", 30 * HOUR),  # the whole way, stages in between
            ("lead", "mql", 2 * HOUR),
            ("mql", "sql", 3 * HOUR),
            ("sql", "customer", 25 * HOUR),
        ]

    def test_a_skipped_stage_is_skipped(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0))
        f.apply(0, stage("s1", "a", "sql", T0 + 4 * HOUR))
        f.apply(0, stage("s2", "a", "contacted", T0 + HOUR))  # outside the funnel order
        tick(f, T0 + 10 * HOUR)
        assert stage_times(f) == [("lead", "sql", 4 * HOUR)]

    def test_a_stage_change_read_before_its_predecessor_changes_nothing(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0))
        f.apply(0, stage("s2", "a", "sql", T0 + 5 * HOUR))  # read first
        f.apply(0, stage("s1", "a", "mql", T0 + 2 * HOUR))
        tick(f, T0 + 10 * HOUR)
        assert stage_times(f) == [("lead", "mql", 2 * HOUR), ("mql", "sql", 3 * HOUR)]

    def test_a_restart_observes_the_rest_only(self) -> None:
        f, leads, visitors = funnel()
        f.apply(0, lead("l1", "a", T0))
        f.apply(0, stage("s1", "a", "mql", T0 + 2 * HOUR))
        f.apply(0, stage("s2", "a", "sql", T0 + 5 * HOUR))
        tick(f, T0 + 4 * HOUR)  # lead -> mql observed before the restart
        assert stage_times(f) == [("lead", "mql", 2 * HOUR)]
        again = Funnel(RULES, leads, visitors, "event")
        again.rebuild([0], [])
        tick(again, T0 + 7 * HOUR)
        assert stage_times(again) == [("mql", "sql", 3 * HOUR)]


class TestWhereLeadsAre:
    RULES = FunnelRules(stuck_after=(("mql", 2 * HOUR),))

    def test_current_stage_and_stuck(self) -> None:
        f, _, _ = funnel(self.RULES, mode="wall", now=T0)
        f.apply(0, lead("l1", "a", T0))
        f.apply(0, lead("l2", "b", T0))
        f.apply(0, stage("s1", "a", "mql", T0 + HOUR))
        assert f.stage_gauges()["lead"] == (1, 0) and f.stage_gauges()["mql"] == (1, 0)
        f.advance(T0 + 3 * HOUR + 1)  # a has sat in mql for more than 2 h
        assert f.stage_gauges()["mql"] == (1, 1)
        f.apply(0, stage("s2", "a", "sql", T0 + 4 * HOUR))
        f.apply(0, stage("s3", "b", "disqualified", T0 + 4 * HOUR))
        gauges = f.stage_gauges()
        assert (gauges["lead"], gauges["mql"], gauges["sql"]) == ((0, 0), (0, 0), (1, 0))


class TestStages:
    def test_first_entry_per_stage_and_reentries(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0, "email"))
        f.apply(0, stage("s1", "a", "mql", T0 + HOUR))
        f.apply(0, stage("s2", "a", "lead", T0 + 2 * HOUR))  # recycled: a re-entry
        f.apply(0, stage("s3", "a", "mql", T0 + 3 * HOUR))  # again mql: a re-entry
        assert entries(f) == {("lead", "email"): 1, ("mql", "email"): 1}
        assert f.effects.reentries == ["lead", "mql"]
        windows = f.window_entries()
        assert windows[("mql", "1d", "current")] == 1  # the lead counts once per stage
        assert windows[("lead", "1d", "current")] == 1

    def test_a_skipped_stage_is_not_counted_and_sql_stops_the_clock(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0, "organic", "north"))
        f.apply(0, stage("s1", "a", "sql", T0 + 2 * HOUR))
        assert entries(f) == {("lead", "organic"): 1, ("sql", "organic"): 1}
        assert f.window_entries()[("mql", "1d", "current")] == 0
        assert followups(f) == [FollowUp("north", 7200.0, None, True, False)]

    def test_visits_count_every_distinct_visit(self) -> None:
        f, _, _ = funnel()
        assert f.apply(1, visit("v1", "x", T0, "social")) == "applied"
        assert f.apply(1, visit("v2", "x", T0 + MINUTE, "social")) == "applied"
        assert f.apply(1, visit("v1", "x", T0, "social")) == "duplicate"
        assert entries(f) == {("visit", "social"): 2}
        assert f.window_entries()[("visit", "1h", "current")] == 2

    def test_a_visit_applier_applies_as_apply_does(self) -> None:
        """``visit_applier(partition)`` (the worker's way) gives the statuses, states and
        aggregates ``apply(partition, ...)`` gives."""
        visits = [
            visit("v1", "x", T0),
            visit("v2", "x", T0 + MINUTE),
            visit("v1", "x", T0),
            visit("v3", "y", T0 + DAY),
            visit("v4", "x", T0 - HOUR, "email"),
        ]
        f, _, by_apply = funnel()
        g, _, by_applier = funnel()
        apply = g.visit_applier(3)
        for event in visits:
            assert apply(event, event_seconds(event.occurred_at)) == f.apply(3, event)
        assert by_applier == by_apply
        assert entries(g) == entries(f)
        assert g.window_entries() == f.window_entries()


class TestDuplicates:
    def test_a_lead_sent_twice_is_applied_once(self) -> None:
        f, leads, _ = funnel()
        created = lead("l1", "a", T0, "email", "north")
        assert f.apply(0, created) == "applied"
        stored, before = dict(leads), f.window_entries()
        assert f.apply(0, created) == "duplicate"
        assert f.apply(0, created) == "duplicate"
        assert entries(f) == {("lead", "email"): 1}
        assert f.effects.reentries == []
        assert leads == stored
        assert f.window_entries() == before
        assert gauges(f) == {"north": FollowupGauge(1, 0, T0)}

    def test_a_wall_clock_backfill_recognises_duplicates_of_old_events(self) -> None:
        # Events a month old, replayed live: the duplicate horizon runs in event time.
        # (The core forgot the id of every event older than the horizon against the wall
        # clock the moment it was applied, and counted its duplicate again.)
        f, leads, _ = funnel(mode="wall", now=T0 + 30 * DAY)
        created, changed = lead("l1", "a", T0), stage("s1", "a", "mql", T0 + HOUR)
        assert [f.apply(0, e) for e in (created, created, changed, changed)] == [
            "applied",
            "duplicate",
            "applied",
            "duplicate",
        ]
        assert f.effects.reentries == []
        # Ids older than the horizon of the lead's partition's events are forgotten.
        f.apply(0, stage("s2", "a", "mql", T0 + 8 * DAY))
        assert set(LeadState.decode(leads["a"]).seen) == {dedupe_key("s2")}

    def test_a_duplicate_stage_change_is_no_reentry(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0))
        assert f.apply(0, stage("s1", "a", "contacted", T0 + HOUR)) == "applied"
        assert f.apply(0, stage("s1", "a", "contacted", T0 + HOUR)) == "duplicate"
        assert f.effects.reentries == []
        assert len(followups(f)) == 1


class TestOutOfOrder:
    def test_follow_up_before_its_lead_is_held_then_recorded_once(self) -> None:
        f, _, _ = funnel()
        assert f.apply(0, stage("s1", "a", "contacted", T0 + 20 * MINUTE)) == "applied"
        assert entries(f) == {}  # held: not counted yet
        assert followups(f) == []
        assert nonzero(f.window_entries()) == {}
        f.apply(0, lead("l1", "a", T0, "referral", "north"))
        assert entries(f) == {("lead", "referral"): 1, ("contacted", "referral"): 1}
        assert followups(f) == [FollowUp("north", 1200.0, None, True, False)]
        # Nothing more happens to it: no second follow-up when the clock moves on.
        tick(f, T0 + 3 * DAY)
        assert followups(f) == [FollowUp("north", 1200.0, None, True, False)]
        assert breaches(f) == []
        assert gauges(f) == {}

    def test_stage_change_of_a_lead_that_never_arrives_is_counted_after_the_hold(self) -> None:
        # The clock starts at mql here, so the orphan has a follow-up to report, and a team.
        f, _, _ = funnel(FunnelRules(clock_starts_at="mql"))
        f.apply(0, stage("s1", "ghost", "mql", T0))
        f.apply(0, stage("s2", "ghost", "contacted", T0 + 10 * MINUTE))
        tick(f, T0 + HOUR)  # exactly at the end of the hold: still held
        assert entries(f) == {}
        assert followups(f) == []
        assert f.window_entries()[("mql", "1h", "current")] == 0
        tick(f, T0 + HOUR + 1)
        assert entries(f) == {("mql", "unknown"): 1, ("contacted", "unknown"): 1}
        assert followups(f) == [FollowUp("default", 600.0, None, True, False)]
        assert f.window_entries()[("mql", "1h", "previous")] == 1
        # Its lead_created arriving after all counts only its own entry, with its source.
        f.apply(0, lead("l1", "ghost", T0 - HOUR, "email", "north"))
        assert entries(f) == {
            ("mql", "unknown"): 1,
            ("contacted", "unknown"): 1,
            ("lead", "email"): 1,
        }
        assert len(followups(f)) == 1

    def test_the_hold_of_another_partition_is_not_passed(self) -> None:
        f, _, _ = funnel()
        f.apply(1, stage("s1", "ghost", "mql", T0))
        tick(f, T0 + 2 * HOUR, partition=0)
        assert entries(f) == {}
        tick(f, T0 + 2 * HOUR, partition=1)
        assert entries(f) == {("mql", "unknown"): 1}

    def test_clock_skew_records_zero(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0, team="south"))
        f.apply(0, stage("s1", "a", "contacted", T0 - 3 * MINUTE))
        assert followups(f) == [FollowUp("south", 0.0, None, True, True)]


class TestBreaches:
    def test_declared_when_the_event_clock_passes_deadline_plus_grace(self) -> None:
        f, _, _ = funnel(FunnelRules(breach_grace=HOUR))
        f.apply(0, lead("l1", "a", T0, team="north"))
        tick(f, T0 + 25 * HOUR)  # deadline + grace, not past it
        assert breaches(f) == []
        # Past both warnings (20 h and 23 h), so at risk until the breach is declared.
        assert gauges(f) == {"north": FollowupGauge(1, 0, T0, {"4h": 1, "1h": 1})}
        tick(f, T0 + 25 * HOUR + 1)
        assert breaches(f) == ["north"]
        assert gauges(f) == {"north": FollowupGauge(1, 1, T0)}
        # The follow-up comes late: recorded, not within the SLA, and no second breach.
        f.apply(0, stage("s1", "a", "contacted", T0 + 26 * HOUR))
        assert followups(f) == [FollowUp("north", 93600.0, None, False, False)]
        assert breaches(f) == ["north"]
        assert gauges(f) == {}
        tick(f, T0 + 40 * HOUR)
        assert breaches(f) == ["north"]

    def test_the_event_clock_is_the_lower_of_the_two_lead_topics(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0, team="north"))
        # Leads read far ahead, stage changes not: the follow-up may still come.
        f.apply(0, lead("l2", "b", T0 + 30 * HOUR, team="north"))
        assert breaches(f) == []
        f.apply(0, stage("s1", "b", "mql", T0 + 24 * HOUR + 1))
        assert breaches(f) == ["north"]

    def test_visits_and_other_partitions_do_not_move_a_partitions_clock(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0, team="north"))
        f.apply(0, visit("v1", "x", T0 + 3 * DAY))
        tick(f, T0 + 3 * DAY, partition=1)
        assert breaches(f) == []
        assert gauges(f) == {"north": FollowupGauge(1, 0, T0)}
        assert f.watermark == T0 + 3 * DAY  # the windows do follow the highest event

    def test_a_follow_up_that_itself_passes_the_deadline_is_one_breach(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0, team="north"))
        tick(f, T0 + 23 * HOUR)
        f.apply(0, stage("s1", "a", "contacted", T0 + 30 * HOUR))
        assert followups(f) == [FollowUp("north", 108000.0, None, False, False)]
        assert breaches(f) == ["north"]
        tick(f, T0 + 31 * HOUR)  # the clock passes the deadline afterwards: nothing new
        assert breaches(f) == ["north"]
        assert gauges(f) == {}

    def test_the_breach_is_the_team_owning_the_lead_at_its_deadline(self) -> None:
        # Stage changes are read ahead of leads: the reassignment (stamped after the
        # deadline) is known before the clock passes the deadline. The breach stays north's,
        # as it would had the topics been read the other way round.
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0, team="north"))
        f.apply(0, stage("s1", "a", "mql", T0 + 30 * HOUR, team="south"))
        assert breaches(f) == []
        f.apply(0, lead("l2", "b", T0 + 31 * HOUR, team="east"))
        assert breaches(f) == ["north"]
        assert gauges(f)["south"] == FollowupGauge(1, 1, T0)  # it is south's to do now

    def test_a_lead_read_after_its_deadline_passed_breaches_at_once(self) -> None:
        f, _, _ = funnel()
        tick(f, T0 + 2 * DAY)
        f.apply(0, lead("l1", "a", T0, team="south"))
        assert breaches(f) == ["south"]
        assert gauges(f) == {"south": FollowupGauge(1, 1, T0)}
        tick(f, T0 + 3 * DAY)
        assert breaches(f) == ["south"]

    def test_wall_clock_mode_declares_breaches_on_advance(self) -> None:
        f, _, _ = funnel(mode="wall", now=T0)
        f.apply(0, lead("l1", "a", T0, team="north"))
        f.apply(3, lead("l2", "b", T0 + HOUR, team="south"))
        f.advance(T0 + 24 * HOUR)
        assert breaches(f) == []
        f.advance(T0 + 24 * HOUR + 1)
        assert breaches(f) == ["north"]
        f.advance(T0)  # a clock does not go back
        f.advance(T0 + 26 * HOUR)
        assert breaches(f) == ["north", "south"]
        assert gauges(f) == {
            "north": FollowupGauge(1, 1, T0),
            "south": FollowupGauge(1, 1, T0 + HOUR),
        }

    def test_wall_clock_mode_holds_orphans_in_event_time(self) -> None:
        f, _, _ = funnel(mode="wall", now=T0)
        f.apply(0, stage("s1", "ghost", "sql", T0))
        # Wall time passing proves nothing: in a catch-up the lead may not be read yet.
        f.advance(T0 + 10 * HOUR)
        assert entries(f) == {}
        # Once the partition is read past the hold on both topics, it counts on its own.
        f.apply(0, lead("l2", "other", T0 + HOUR + 1))
        assert ("sql", "unknown") not in entries(f)
        f.apply(0, stage("s2", "other", "contacted", T0 + HOUR + 1))
        assert entries(f)[("sql", "unknown")] == 1


class TestBusinessHours:
    OFFICE = BusinessCalendar.from_names(
        "UTC", ["mon", "tue", "wed", "thu", "fri"], time(9), time(17)
    )
    RULES = FunnelRules(calendar=OFFICE, followup_within=8 * HOUR)

    def test_latency_in_wall_and_business_seconds(self) -> None:
        f, _, _ = funnel(self.RULES)
        f.apply(0, lead("l1", "a", at("2026-11-20T15:00:00Z"), team="north"))  # Friday
        f.apply(0, stage("s1", "a", "contacted", at("2026-11-23T14:30:00Z")))  # Monday
        # 71.5 h of wall time; 2 h on Friday and 5.5 h on Monday of business time.
        assert followups(f) == [FollowUp("north", 71.5 * HOUR, 7.5 * HOUR, True, False)]
        assert breaches(f) == []

    def test_the_deadline_follows_the_calendar(self) -> None:
        f, _, _ = funnel(self.RULES)
        f.apply(0, lead("l1", "a", at("2026-11-20T15:00:00Z"), team="north"))  # Friday
        tick(f, at("2026-11-22T23:00:00Z"))  # 56 wall hours later, but a weekend
        assert breaches(f) == []
        tick(f, at("2026-11-23T15:00:00Z"))  # Monday: 2 h + 6 h, exactly the SLA
        assert breaches(f) == []
        tick(f, at("2026-11-23T15:00:01Z"))
        assert breaches(f) == ["north"]


class TestGauges:
    def test_awaiting_overdue_and_oldest_follow_at_once(self) -> None:
        f, _, _ = funnel(mode="wall", now=T0)
        assert gauges(f) == {}
        f.apply(0, lead("l1", "a", T0, team="north"))
        assert gauges(f) == {"north": FollowupGauge(1, 0, T0)}
        f.apply(1, lead("l2", "b", T0 - HOUR, team="north"))  # older, other partition
        f.apply(0, lead("l3", "c", T0 + HOUR, team="south"))
        assert gauges(f) == {
            "north": FollowupGauge(2, 0, T0 - HOUR),
            "south": FollowupGauge(1, 0, T0 + HOUR),
        }
        f.advance(T0 + 24 * HOUR)  # past b's deadline only
        # a (due T0 + 24 h) is past both warnings; c (due T0 + 25 h) past the 4 h one only.
        assert gauges(f) == {
            "north": FollowupGauge(2, 1, T0 - HOUR, {"4h": 1, "1h": 1}),
            "south": FollowupGauge(1, 0, T0 + HOUR, {"4h": 1}),
        }
        f.apply(1, stage("s1", "b", "contacted", T0 + 24 * HOUR))  # the oldest is done
        assert gauges(f) == {
            "north": FollowupGauge(1, 0, T0, {"4h": 1, "1h": 1}),
            "south": FollowupGauge(1, 0, T0 + HOUR, {"4h": 1}),
        }
        f.apply(0, stage("s2", "a", "disqualified", T0 + 24 * HOUR))
        f.apply(0, stage("s3", "c", "sql", T0 + 24 * HOUR))
        assert gauges(f) == {}

    def test_oldest_follows_an_earlier_start_that_keeps_the_deadline(self) -> None:
        # On a calendar two starts on a Saturday share one deadline (after Monday).
        # (The core then lost the lead from the oldest-start gauge: awaiting 1, oldest none.)
        rules = FunnelRules(calendar=TestBusinessHours.OFFICE, followup_within=8 * HOUR)
        f, _, _ = funnel(rules, mode="wall", now=T0)
        f.apply(0, lead("l1", "a", at("2026-11-21T10:00:00Z"), team="north"))
        f.apply(0, stage("s1", "a", "lead", at("2026-11-21T09:00:00Z")))
        assert gauges(f) == {"north": FollowupGauge(1, 0, at("2026-11-21T09:00:00Z"))}

    def test_a_team_override_moves_the_lead_from_that_event_on(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", T0, team="north"))
        f.apply(0, lead("l2", "b", T0, team="north"))
        f.apply(0, stage("s1", "a", "mql", T0 + HOUR, team="south"))
        assert gauges(f) == {
            "north": FollowupGauge(1, 0, T0),
            "south": FollowupGauge(1, 0, T0),
        }
        f.apply(0, stage("s2", "a", "contacted", T0 + 2 * HOUR))
        assert followups(f) == [FollowUp("south", 7200.0, None, True, False)]
        tick(f, T0 + 25 * HOUR)
        assert breaches(f) == ["north"]  # b stayed with north


class TestWindows:
    def test_current_and_previous_windows_hold_the_watermark_and_the_one_before(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", at("2026-11-19T23:30:00Z")))  # day before
        f.apply(0, lead("l2", "b", at("2026-11-20T08:10:00Z")))  # previous hour
        f.apply(0, lead("l3", "c", at("2026-11-20T09:00:00Z")))  # current hour, from its start
        f.apply(0, stage("s1", "c", "mql", at("2026-11-20T09:59:59Z")))
        f.apply(1, visit("v1", "x", at("2026-11-20T09:30:00Z")))
        expected = {
            ("visit", "1h", "current"): 1,
            ("visit", "1d", "current"): 1,
            ("lead", "1h", "current"): 1,
            ("lead", "1h", "previous"): 1,
            ("lead", "1d", "current"): 2,
            ("lead", "1d", "previous"): 1,
            ("mql", "1h", "current"): 1,
            ("mql", "1d", "current"): 1,
        }
        windows = f.window_entries()
        assert nonzero(windows) == expected
        # Every configured stage, window and period is there, with 0 where nothing entered.
        assert len(windows) == len(RULES.all_stages) * 2 * 2
        # The watermark moves into the next hour: current becomes previous.
        f.apply(1, visit("v2", "x", at("2026-11-20T10:00:00Z")))
        windows = f.window_entries()
        assert windows[("lead", "1h", "previous")] == 1
        assert windows[("lead", "1h", "current")] == 0
        assert windows[("mql", "1h", "previous")] == 1
        assert windows[("visit", "1h", "current")] == 1
        assert windows[("visit", "1h", "previous")] == 1
        assert windows[("lead", "1d", "current")] == 2

    def test_visits_back_and_forth_across_window_bounds_count_in_their_own(self) -> None:
        # Kolkata is UTC+05:30: its hours and days start at :30 UTC. Visits alternate
        # across an hour bound and a local midnight, in both directions.
        zone = "Asia/Kolkata"
        windows = tuple(parse_window(name, zone) for name in ("15m", "1h", "1d"))
        f, _, _ = funnel(FunnelRules(windows=windows))
        times = [
            at(t)
            for t in (
                "2026-11-20T18:29:59Z",
                "2026-11-20T18:30:00Z",
                "2026-11-20T18:29:00Z",
                "2026-11-20T18:44:59Z",
                "2026-11-20T18:45:00Z",
                "2026-11-20T17:30:00Z",
                "2026-11-20T18:31:00Z",
            )
        ]
        for i, t in enumerate(times):
            f.apply(0, visit(f"v{i}", "x", t))
        # By hand, in UTC: the 15-minute bounds fall on UTC's (05:30 is a whole number of
        # quarters), hours start at :30, days at 18:30 UTC the day before.
        # 18:29:59 and 18:29 → 18:15, 17:30 (hour), Nov 19 18:30 (day);
        # 18:30, 18:44:59 and 18:31 → 18:30, 18:30, Nov 20 18:30; 18:45 → 18:45, 18:30,
        # Nov 20 18:30; 17:30 → 17:30, 17:30, Nov 19 18:30.
        expected = Counter(
            {
                ("visit", "15m", at("2026-11-20T17:30:00Z")): 1,
                ("visit", "15m", at("2026-11-20T18:15:00Z")): 2,
                ("visit", "15m", at("2026-11-20T18:30:00Z")): 3,
                ("visit", "15m", at("2026-11-20T18:45:00Z")): 1,
                ("visit", "1h", at("2026-11-20T17:30:00Z")): 3,
                ("visit", "1h", at("2026-11-20T18:30:00Z")): 4,
                ("visit", "1d", at("2026-11-19T18:30:00Z")): 3,
                ("visit", "1d", at("2026-11-20T18:30:00Z")): 4,
            }
        )
        counted = Counter(
            {k: n for view in f.views.values() for k, n in view.window_counts.items()}
        )
        assert counted == expected
        # Local midnight (18:30 UTC) splits the days 4 / 3 (the 17:30 visit is the day before).
        days = sorted(n for (_, name, _), n in counted.items() if name == "1d")
        assert days == [3, 4]

    def test_an_earlier_entry_moves_the_lead_to_its_own_window(self) -> None:
        f, _, _ = funnel()
        f.apply(0, lead("l1", "a", at("2026-11-20T09:15:00Z")))
        f.apply(0, stage("s2", "a", "mql", at("2026-11-20T09:45:00Z")))
        f.apply(0, stage("s1", "a", "mql", at("2026-11-20T08:45:00Z")))  # late, earlier
        windows = f.window_entries()
        assert windows[("mql", "1h", "current")] == 0
        assert windows[("mql", "1h", "previous")] == 1
        assert windows[("mql", "1d", "current")] == 1


class TestRebuild:
    @pytest.mark.parametrize("mode", ["event", "wall"])
    def test_rebuild_after_any_message_equals_the_live_funnel(self, mode: ClockMode) -> None:
        scenario = hand_built_scenario()
        stages = frozenset(RULES.all_stages)
        # In wall mode the clock sits between the two days: some deadlines have passed.
        now = at("2026-11-21T08:45:00Z")  # (event mode does not read it)
        live, leads, visitors = funnel(mode=mode, now=now)
        for m in scenario.messages:
            event = classify(m.kind, m.key, m.value, stages=stages)
            if isinstance(event, Rejection):
                continue
            live.apply(m.partition, event)
            restarted = Funnel(RULES, leads, visitors, mode, now=lambda: now)
            restarted.rebuild([0, 1], [0, 1])
            assert restarted.window_entries() == live.window_entries()
            assert restarted.followup_gauges() == live.followup_gauges()
            assert restarted.watermark == live.watermark
            assert not restarted.effects  # a rebuild counts nothing again

    def test_a_restarted_funnel_goes_on_exactly_as_the_live_one(self) -> None:
        scenario = hand_built_scenario()
        stages = frozenset(RULES.all_stages)
        events = [
            (m.partition, e)
            for m in scenario.messages
            if not isinstance(e := classify(m.kind, m.key, m.value, stages=stages), Rejection)
        ]
        whole, _, _ = funnel()
        for partition, event in events:
            whole.apply(partition, event)
        for crash in range(len(events) + 1):
            live, leads, visitors = funnel()
            for partition, event in events[:crash]:
                live.apply(partition, event)
            restarted = Funnel(RULES, leads, visitors, "event")
            restarted.rebuild([0], [0])
            for partition, event in events[crash:]:
                restarted.apply(partition, event)
            # What both processes counted adds up to one uninterrupted run.
            assert Counter(live.effects.breaches + restarted.effects.breaches) == Counter(
                whole.effects.breaches
            )
            assert live.effects.followups + restarted.effects.followups == (whole.effects.followups)
            assert live.effects.entries + restarted.effects.entries == whole.effects.entries
            assert Counter(live.effects.entry_counts()) + Counter(
                restarted.effects.entry_counts()
            ) == Counter(whole.effects.entry_counts())
            assert restarted.window_entries() == whole.window_entries()
            assert restarted.followup_gauges() == whole.followup_gauges()

    def test_revoke_drops_the_partitions_contribution(self) -> None:
        f, leads, visitors = funnel(mode="wall", now=T0)
        f.apply(0, lead("l1", "a", T0, team="north"))
        f.apply(1, lead("l2", "b", T0 - HOUR, team="north"))
        f.apply(1, lead("l3", "c", T0, team="south"))
        f.apply(1, visit("v1", "x", T0))
        f.revoke([1], [])
        assert gauges(f) == {"north": FollowupGauge(1, 0, T0)}
        windows = nonzero(f.window_entries())
        assert windows[("lead", "1h", "current")] == 1
        assert windows[("visit", "1h", "current")] == 1  # visits partition 1 is still ours
        f.revoke([], [1])
        assert ("visit", "1h", "current") not in nonzero(f.window_entries())
        # The owner of the revoked partitions rebuilds them from the shared tables.
        other = Funnel(RULES, leads, visitors, "wall", now=lambda: T0)
        other.rebuild([1], [1])
        assert other.followup_gauges() == {
            "north": FollowupGauge(1, 0, T0 - HOUR),
            "south": FollowupGauge(1, 0, T0),
        }
        assert nonzero(other.window_entries()) == {
            ("lead", "1h", "current"): 1,
            ("lead", "1h", "previous"): 1,
            ("lead", "1d", "current"): 2,
            ("visit", "1h", "current"): 1,
            ("visit", "1d", "current"): 1,
        }


def assert_scenario_metrics(scenario: Scenario, messages: Iterable[Message]) -> None:
    """Run ``messages`` through ``classify`` and a ``Funnel`` (event mode, default rules) and
    check every metric ``scenario`` expects."""
    f, _, _ = funnel()
    stages = frozenset(RULES.all_stages)
    outcomes: Counter[tuple[str, str]] = Counter()
    consumed: Counter[str] = Counter()
    for m in messages:
        consumed[m.kind] += 1
        event = classify(m.kind, m.key, m.value, stages=stages)
        if isinstance(event, Rejection):
            outcomes[(m.kind, event.reason)] += 1
        else:
            outcomes[(m.kind, f.apply(m.partition, event))] += 1
    e = f.effects

    assert consumed == scenario.consumed
    assert {k: n for (k, o), n in outcomes.items() if o == "applied"} == scenario.applied
    assert {k: n for (k, o), n in outcomes.items() if o == "duplicate"} == scenario.duplicate
    assert {
        (k, o): n for (k, o), n in outcomes.items() if o not in ("applied", "duplicate")
    } == scenario.rejected

    assert e.entry_counts() == scenario.stage_entries
    assert Counter(e.reentries) == scenario.stage_reentries
    assert f.watermark == scenario.watermark
    assert nonzero(f.window_entries()) == scenario.window_entries
    latencies: dict[str, list[float]] = {}
    for u in e.followups:
        latencies.setdefault(u.team, []).append(u.wall_seconds)
    assert {team: sorted(v) for team, v in latencies.items()} == scenario.followup_latencies
    assert (
        Counter((u.team, "true" if u.within_sla else "false") for u in e.followups)
        == scenario.followups
    )
    assert Counter(u.team for u in e.followups if u.clock_skew) == scenario.clock_skew
    assert all(u.business_seconds is None for u in e.followups)  # no calendar by default
    assert Counter(e.breaches) == scenario.breaches
    assert Counter(e.warnings) == scenario.warnings
    assert {s: n for s, (n, _) in f.stage_gauges().items() if n} == scenario.in_stage
    assert not any(stuck for _, stuck in f.stage_gauges().values())
    times: dict[tuple[str, str], list[float]] = {}
    for a, b, seconds in e.stage_times:
        times.setdefault((a, b), []).append(seconds)
    assert {k: sorted(v) for k, v in times.items()} == scenario.stage_times
    g = f.followup_gauges()
    assert {
        (team, label): n for team, x in g.items() for label, n in x.at_risk.items()
    } == scenario.at_risk
    assert {team: x.awaiting for team, x in g.items() if x.awaiting} == scenario.awaiting
    assert {team: x.overdue for team, x in g.items() if x.overdue} == scenario.overdue
    assert {
        team: x.oldest_clock_start for team, x in g.items() if x.oldest_clock_start
    } == scenario.oldest_open


def test_hand_built_scenario_gives_every_expected_metric() -> None:
    scenario = hand_built_scenario()
    assert_scenario_metrics(scenario, scenario.messages)


def test_hand_built_scenario_covers_what_it_promises() -> None:
    scenario = hand_built_scenario()
    kinds = [m.kind for m in scenario.messages]
    assert set(kinds) == {"visits", "leads", "transitions"}
    assert {reason for _, reason in scenario.rejected} == set(REJECT_REASONS) - {"future_timestamp"}
    # Every time is an RFC 3339 'Z' timestamp in the past (2026-11-20 and -21).
    for m in scenario.messages:
        if m.value.startswith(b'{"event_id"') and m.value.endswith(b"}"):
            occurred = json.loads(m.value)["occurred_at"]
            assert occurred.endswith("Z")
            assert occurred.startswith(("2026-11-20T", "2026-11-21T"))
