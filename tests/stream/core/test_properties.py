"""Properties of the funnel core: arrival order, duplicates and restarts change no figure.

A world is a few random leads (created or never created, stage changes to any stage after
``lead``, team overrides) and visits, within a few days.

- Any permutation, with redeliveries, in ``wall`` mode with the clock moved only at the
  end, gives the same aggregates, counters and per-lead latencies. Two caveats of a
  streaming counter shape these worlds: a follow-up is recorded when its lead's start and
  first known stop are both there, so each lead has at most one follow-up event here (an
  earlier stop arriving after a later one is not re-recorded); and a team override stamped
  before that stop but arriving after it does not move the recorded follow-up, so
  overrides here come no earlier than the lead's follow-up.
- In ``event`` mode, any interleaving of the topic partitions (each read in its own
  order, as Kafka delivers them, with redeliveries) gives the same figures, with no such
  restriction: this is what the per-partition event clock is for.
- The hand-built scenario's expectations hold however a consumer interleaves its topics,
  and however its keys are spread over partitions.
- After any prefix of the stream, ``rebuild`` over the stored states equals the live
  aggregates, and a funnel rebuilt there (a restart after ``kill -9``) goes on to count,
  together with the one that died, exactly what one uninterrupted funnel counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import Event, LeadCreated, StageChanged, Visit
from stream.core.calendar import BusinessCalendar
from stream.core.effects import FollowUp
from stream.core.funnel import ClockMode, FollowupGauge, Funnel
from stream.core.leads import LeadState
from stream.core.leadstatus import lead_status
from stream.core.rules import FunnelRules
from tests.stream.core.scenario import (
    DAY,
    HOUR,
    Message,
    at,
    hand_built_scenario,
    lead,
    stage,
    visit,
)
from tests.stream.core.test_funnel import assert_scenario_metrics

BASE = at("2026-11-20T00:00:00Z")
FAR = BASE + 60 * DAY
MINUTE = 60.0
PARTITIONS = 3
TEAMS = ("north", "south", "east")
SOURCES = ("organic", "email", "social")
LATER_STAGES = ("mql", "sql", "opportunity", "customer", "contacted", "disqualified")
# Monday to Friday, 09:00-17:00 UTC, with an 8-business-hour SLA.
OFFICE = BusinessCalendar.from_names("UTC", ["mon", "tue", "wed", "thu", "fri"], time(9), time(17))
RULE_SETS = (
    FunnelRules(),
    FunnelRules(breach_grace=2 * HOUR, stuck_after=(("lead", 6 * HOUR), ("mql", DAY))),
    FunnelRules(
        calendar=OFFICE, followup_within=8 * HOUR, stuck_after=(("mql", 8 * HOUR), ("sql", DAY))
    ),
)
# In stream order (each partition read in time order) the clock may also start at mql.
STREAM_RULE_SETS = (*RULE_SETS, FunnelRules(clock_starts_at="mql"))

Sent = tuple[int, Event]  # (partition, event)

# The same examples on every run, so CI never fails on luck; the file runs in a few seconds.
# (Each property has also passed 1,500 to 3,000 random examples.)
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class World:
    """Random events of leads and visits, and the rules to apply them with."""

    rules: FunnelRules
    events: tuple[Sent, ...]


def times(t: Event) -> float:
    return t.occurred_at.timestamp()


@st.composite
def lead_events(draw: st.DrawFn, i: int, strict_order: bool) -> list[Sent]:
    """One lead's events. ``strict_order``: the shape any-permutation runs need."""
    lead_id = f"lead-{i}"
    partition = i % PARTITIONS
    created = draw(st.sampled_from((True, True, False)))  # a third never arrive
    start = BASE + draw(st.integers(0, 3 * 24 * 60)) * MINUTE
    # Distinct minutes, so no two events of a lead tie (ties have no arrival-free order).
    # Stage changes of a created lead are at most 30 min before it (clock skew), within
    # the orphan hold; an orphan's are anywhere.
    low = -30 if created else -3 * 24 * 60
    offsets = draw(st.lists(st.integers(low, 3 * 24 * 60), min_size=0, max_size=5, unique=True))
    offsets = [o for o in offsets if o != 0]
    events: list[Sent] = []
    if created:
        team = draw(st.sampled_from(TEAMS))
        source = draw(st.sampled_from(SOURCES))
        events.append((partition, lead(f"{lead_id}-c", lead_id, start, source, team)))
        if not strict_order and draw(st.integers(0, 4)) == 0:
            # Created again later (a re-import): a re-entry, with any team and source.
            # Half a minute off the grid, so it ties with no stage change.
            again = start + (draw(st.integers(1, 2 * 24 * 60)) + 0.5) * MINUTE
            other_team, other_source = draw(st.sampled_from(TEAMS)), draw(st.sampled_from(SOURCES))
            events.append(
                (partition, lead(f"{lead_id}-c2", lead_id, again, other_source, other_team))
            )
    changes: list[tuple[float, str]] = []
    has_stop = False
    for o in sorted(offsets):
        to_stage = draw(st.sampled_from(("lead", *LATER_STAGES)))
        if strict_order and to_stage == "lead" and created and o < 0:
            # An earlier start arriving after the stop would not be re-recorded.
            to_stage = "mql"
        if strict_order and to_stage in RULE_SETS[0].followup_stages:
            if has_stop:
                to_stage = "mql"
            has_stop = True
        changes.append((start + o * MINUTE, to_stage))
    stop_at = min((t for t, s in changes if s in RULE_SETS[0].followup_stages), default=None)
    for n, (t, to_stage) in enumerate(changes):
        override: str | None = None
        may_override = not strict_order or stop_at is None or t >= stop_at
        if may_override and draw(st.integers(0, 3)) == 0:
            override = draw(st.sampled_from(TEAMS))
        events.append((partition, stage(f"{lead_id}-s{n}", lead_id, to_stage, t, override)))
    return events


@st.composite
def worlds(draw: st.DrawFn, strict_order: bool) -> World:
    events: list[Sent] = []
    for i in range(draw(st.integers(1, 6))):
        events.extend(draw(lead_events(i, strict_order)))
    for n in range(draw(st.integers(0, 5))):
        visitor = draw(st.integers(0, 3))
        t = BASE + draw(st.integers(0, 3 * 24 * 60)) * MINUTE
        source = draw(st.sampled_from(SOURCES))
        events.append((visitor % 2, visit(f"v{n}", f"visitor-{visitor}", t, source)))
    rules = draw(st.sampled_from(RULE_SETS if strict_order else STREAM_RULE_SETS))
    return World(rules, tuple(events))


@st.composite
def with_redeliveries(draw: st.DrawFn, sent: list[Sent]) -> list[Sent]:
    """``sent`` with a few messages delivered again, anywhere after the first copy."""
    out = list(sent)
    for _ in range(draw(st.integers(0, 4))):
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        j = draw(st.integers(i + 1, len(out)))
        out.insert(j, out[i])
    return out


@dataclass(frozen=True)
class Outcome:
    """Everything a user sees of a run: aggregates, counters, per-lead facts."""

    windows: dict[tuple[str, str, str], int]
    gauges: dict[str, FollowupGauge]
    entries: Counter[tuple[str, str]]
    entries_per_stage: Counter[str]
    reentries: Counter[str]
    followups: Counter[FollowUp]
    followups_per_team: Counter[tuple[str, bool]]
    breaches: Counter[str]
    warnings: Counter[tuple[str, str]]
    stage_times: Counter[tuple[str, str, float]]
    stages: dict[str, tuple[int, int]]
    latencies: dict[str, FollowUp | None]


def outcome(f: Funnel, leads: dict[str, bytes], clock: float) -> Outcome:
    e = f.effects
    latencies = {
        key: lead_status(LeadState.decode(raw), f.rules, clock).followup
        for key, raw in leads.items()
    }
    return Outcome(
        windows=f.window_entries(),
        gauges=f.followup_gauges(),
        entries=Counter(e.entry_counts()),
        entries_per_stage=Counter(s for (s, _), n in e.entry_counts().items() for _ in range(n)),
        reentries=Counter(e.reentries),
        followups=Counter(e.followups),
        followups_per_team=Counter((u.team, u.within_sla) for u in e.followups),
        breaches=Counter(e.breaches),
        warnings=Counter(e.warnings),
        stage_times=Counter(e.stage_times),
        stages=f.stage_gauges(),
        latencies=latencies,
    )


def run_wall(world: World, order: list[Sent]) -> Outcome:
    """Apply ``order`` with the wall clock before every event, then move it past them all.

    Orphan holds pass on each partition's event clock, also in wall mode. Here any order is
    allowed, not just each partition in time order, so the hold is made longer than the
    world (a lead always arrives within it); the sentinels then move every partition past
    everything, as the rest of a live stream would, and release the true orphans.
    """
    leads: dict[str, bytes] = {}
    rules = replace(world.rules, orphan_hold=30 * DAY)
    f = Funnel(rules, leads, {}, "wall", now=lambda: 0.0)
    for partition, event in order:
        f.apply(partition, event)
    for partition, event in sentinels():
        f.apply(partition, event)
    f.advance(FAR)
    result = outcome(f, leads, FAR)
    # What the effects recorded is what the states say, lead by lead.
    assert result.followups == Counter(u for u in result.latencies.values() if u is not None)
    return result


@PROPERTY
@given(world=worlds(strict_order=True), data=st.data())
def test_any_permutation_with_redeliveries_gives_the_same_figures(
    world: World, data: st.DataObject
) -> None:
    in_time_order = sorted(world.events, key=lambda s: times(s[1]))
    expected = run_wall(world, in_time_order)
    order = data.draw(st.permutations(world.events))
    order = data.draw(with_redeliveries(list(order)))
    assert run_wall(world, order) == expected


@st.composite
def interleavings(draw: st.DrawFn, world: World) -> list[Sent]:
    """Kafka-like delivery: each topic partition in time order (with redeliveries of a
    contiguous range, as after a restart), the partitions interleaved at random; then a
    lead and a stage change far ahead on every lead partition, to pass every deadline."""
    streams: dict[tuple[str, int], list[Sent]] = {}
    for partition, event in sorted(world.events, key=lambda s: times(s[1])):
        streams.setdefault((event.type, partition), []).append((partition, event))
    for key, stream in streams.items():
        if draw(st.integers(0, 2)) == 0:
            i = draw(st.integers(0, len(stream) - 1))
            j = draw(st.integers(i, len(stream) - 1))
            streams[key] = stream[: j + 1] + stream[i : j + 1] + stream[j + 1 :]
    pending = [list(s) for _, s in sorted(streams.items())]
    out: list[Sent] = []
    while any(pending):
        live = [s for s in pending if s]
        out.append(live[draw(st.integers(0, len(live) - 1))].pop(0))
    return out


def sentinels() -> list[Sent]:
    out: list[Sent] = []
    for p in range(PARTITIONS):
        out.append((p, lead(f"end-{p}-c", f"end-{p}", FAR, "organic", "north")))
        out.append((p, stage(f"end-{p}-s", f"end-{p}", "mql", FAR)))
    return out


def run_event(world: World, order: list[Sent]) -> tuple[Outcome, dict[tuple[str, str, str], int]]:
    """Apply ``order`` in event mode, then the sentinels; the windows before them too."""
    leads: dict[str, bytes] = {}
    f = Funnel(world.rules, leads, {}, "event")
    for partition, event in order:
        f.apply(partition, event)
    windows = f.window_entries()
    for partition, event in sentinels():
        f.apply(partition, event)
    return outcome(f, leads, FAR), windows


@PROPERTY
@given(world=worlds(strict_order=False), data=st.data())
def test_event_mode_any_interleaving_of_partitions_gives_the_same_figures(
    world: World, data: st.DataObject
) -> None:
    expected = run_event(world, sorted(world.events, key=lambda s: (times(s[1]), s[1].type)))
    assert run_event(world, data.draw(interleavings(world))) == expected


@PROPERTY
@given(
    world=worlds(strict_order=False),
    mode=st.sampled_from(["event", "wall"]),
    data=st.data(),
)
def test_rebuild_after_any_prefix_equals_the_live_aggregates(
    world: World, mode: ClockMode, data: st.DataObject
) -> None:
    order = data.draw(with_redeliveries(list(data.draw(st.permutations(world.events)))))
    # The wall clock sits in the middle of the events, so some deadlines and holds passed.
    now = BASE + 2 * DAY
    leads: dict[str, bytes] = {}
    visitors: dict[str, bytes] = {}
    live = Funnel(world.rules, leads, visitors, mode, now=lambda: now)
    for partition, event in order:
        live.apply(partition, event)
        restarted = Funnel(world.rules, leads, visitors, mode, now=lambda: now)
        restarted.rebuild(range(PARTITIONS), range(2))
        assert restarted.window_entries() == live.window_entries()
        assert restarted.followup_gauges() == live.followup_gauges()
        assert restarted.stage_gauges() == live.stage_gauges()
        assert restarted.watermark == live.watermark
        assert not restarted.effects


@PROPERTY
@given(
    world=worlds(strict_order=False),
    mode=st.sampled_from(["event", "wall"]),
    data=st.data(),
)
def test_a_restart_at_any_point_goes_on_as_if_none_happened(
    world: World, mode: ClockMode, data: st.DataObject
) -> None:
    order = data.draw(with_redeliveries(list(data.draw(st.permutations(world.events)))))
    crash = data.draw(st.integers(0, len(order)))
    now = BASE + 2 * DAY

    def run(f: Funnel, sent: list[Sent]) -> None:
        for partition, event in sent:
            f.apply(partition, event)

    whole = Funnel(world.rules, {}, {}, mode, now=lambda: now)
    run(whole, order)
    whole.advance(FAR)
    leads: dict[str, bytes] = {}
    visitors: dict[str, bytes] = {}
    before = Funnel(world.rules, leads, visitors, mode, now=lambda: now)
    run(before, order[:crash])
    after = Funnel(world.rules, leads, visitors, mode, now=lambda: now)
    after.rebuild(range(PARTITIONS), range(2))
    run(after, order[crash:])
    after.advance(FAR)
    # The two processes together counted what one uninterrupted process counts.
    both, one = before.effects, whole.effects
    assert Counter(both.entry_counts()) + Counter(after.effects.entry_counts()) == Counter(
        one.entry_counts()
    )
    assert Counter(both.reentries + after.effects.reentries) == Counter(one.reentries)
    assert Counter(both.followups + after.effects.followups) == Counter(one.followups)
    assert Counter(both.breaches + after.effects.breaches) == Counter(one.breaches)
    assert Counter(both.warnings + after.effects.warnings) == Counter(one.warnings)
    assert Counter(both.stage_times + after.effects.stage_times) == Counter(one.stage_times)
    assert after.window_entries() == whole.window_entries()
    assert after.followup_gauges() == whole.followup_gauges()
    assert after.stage_gauges() == whole.stage_gauges()


def test_generated_worlds_hold_what_the_properties_need() -> None:
    # Guard against a generator that never makes the interesting cases.
    seen: Counter[str] = Counter()

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(world=worlds(strict_order=False))
    def look(world: World) -> None:
        created = {e.lead_id for _, e in world.events if isinstance(e, LeadCreated)}
        changed = {e.lead_id for _, e in world.events if isinstance(e, StageChanged)}
        seen["orphan"] += bool(changed - created)
        seen["override"] += any(
            isinstance(e, StageChanged) and e.team is not None for _, e in world.events
        )
        seen["visit"] += any(isinstance(e, Visit) for _, e in world.events)
        run, _ = run_event(world, sorted(world.events, key=lambda s: times(s[1])))
        seen["breach"] += bool(run.breaches)
        seen["late"] += any(not u.within_sla for u in run.followups)
        seen["skew"] += any(u.clock_skew for u in run.followups)
        seen["reentry"] += bool(run.reentries)
        seen["warning"] += bool(run.warnings)
        seen["stage time"] += bool(run.stage_times)
        seen["stuck"] += any(stuck for _, stuck in run.stages.values())
        seen["skipped stage"] += any(
            (a, b) not in zip(world.rules.stages, world.rules.stages[1:], strict=False)
            for a, b, _ in run.stage_times
        )
        # Every breached lead passed both warnings; more means a lead at risk made it in time.
        seen["at risk, then in time"] += sum(run.warnings.values()) > 2 * run.breaches.total()

    look()
    assert all(seen[k] >= 5 for k in ("orphan", "override", "visit", "breach", "late", "skew"))
    assert seen["reentry"] >= 5
    assert seen["warning"] >= 5 and seen["at risk, then in time"] >= 5, seen
    assert seen["stage time"] >= 5 and seen["skipped stage"] >= 5 and seen["stuck"] >= 5, seen


@PROPERTY
@given(data=st.data(), spread=st.booleans())
def test_the_hand_built_scenario_holds_in_any_interleaving_of_its_partitions(
    data: st.DataObject, spread: bool
) -> None:
    # What a Kafka consumer may do with it: each topic partition in order, the rest mixed;
    # and, should a producer partition it by key instead, any spread that keeps a key's
    # messages in one partition (leads and their stage changes alike).
    scenario = hand_built_scenario()
    partition_of: dict[bytes | None, int] = {}
    streams: dict[tuple[str, int], list[Message]] = {}
    for m in scenario.messages:
        if spread:
            p = partition_of.setdefault(m.key, data.draw(st.integers(0, 3)))
            m = replace(m, partition=p)
        streams.setdefault((m.kind, m.partition), []).append(m)
    pending = [list(s) for _, s in sorted(streams.items())]
    order: list[Message] = []
    while any(pending):
        live = [s for s in pending if s]
        order.append(live[data.draw(st.integers(0, len(live) - 1))].pop(0))
    assert_scenario_metrics(scenario, order)


@PROPERTY
@given(world=worlds(strict_order=False), mode=st.sampled_from(["event", "wall"]), data=st.data())
def test_holding_lead_states_within_fetches_changes_nothing(
    world: World, mode: ClockMode, data: st.DataObject
) -> None:
    """The worker holds changed lead states until the end of each fetch; a report writes every
    change at once. The same events give the same stores, aggregates and effects."""
    order = data.draw(with_redeliveries(list(data.draw(st.permutations(world.events)))))
    fetch_ends = data.draw(st.sets(st.integers(0, len(order))))
    now = BASE + 2 * DAY
    through = Funnel(world.rules, {}, {}, mode, now=lambda: now)
    held_store: dict[str, bytes] = {}
    held = Funnel(world.rules, held_store, {}, mode, now=lambda: now)
    held.hold_lead_states = True
    for i, (partition, event) in enumerate(order):
        assert held.apply(partition, event) == through.apply(partition, event)
        if i in fetch_ends:
            held_store.update((k, s.encode()) for k, s in held.take_held_leads().items())
    held_store.update((k, s.encode()) for k, s in held.take_held_leads().items())
    for f in (held, through):
        f.advance(FAR)
    assert held_store == through.leads
    assert outcome(held, held_store, FAR) == outcome(through, through.leads, FAR)
