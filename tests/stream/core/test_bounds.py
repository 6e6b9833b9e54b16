"""Bounded states: a hot visitor or lead stays far below Kafka's record limit, and what the
bounds give up is exactly what docs/semantics.md says."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core import visits as visits_module
from stream.core.bounds import (
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    MAX_LEAD_IDS,
    MAX_STAGE_TIMES,
    MAX_TEAM_ASSIGNMENTS,
    MAX_VISIT_IDS,
    dedupe_key,
)
from stream.core.codec import encode_json
from stream.core.funnel import Funnel
from stream.core.leads import LeadState
from stream.core.rules import FunnelRules
from stream.core.visits import VisitorState
from stream.core.windows import parse_window
from tests.stream.core.scenario import lead, stage, visit

T0 = 1.79e9
HOUR, DAY = 3600.0, 86400.0
# "Far below" the limit: an eighth of it.
SMALL = KAFKA_DEFAULT_MAX_MESSAGE_BYTES // 8


def _held_funnel(rules: FunnelRules) -> tuple[Funnel, dict[str, bytes]]:
    store: dict[str, bytes] = {}
    funnel = Funnel(rules, {}, store, "event")
    funnel.hold_visitor_states = True
    return funnel, store


def _write_back(funnel: Funnel, store: dict[str, bytes]) -> None:
    for visitor_id, state in funnel.take_held_visitors().items():
        store[visitor_id] = state.encode()


def test_a_bot_visitor_stays_small_and_its_windows_exact_after_a_rebuild() -> None:
    """200,000 visits of one visitor, 3 s apart (a week): the state stays small, every visit
    counts once, and the window gauges rebuilt from the states equal the live ones."""
    rules = FunnelRules()
    funnel, store = _held_funnel(rules)
    n, largest = 200_000, 0
    for i in range(n):
        assert funnel.apply(0, visit(f"bot-{i}", "bot", T0 + 3.0 * i)) == "applied"
        if i % 5_000 == 4_999:  # the end of a fetch
            _write_back(funnel, store)
            largest = max(largest, len(store["bot"]))
    _write_back(funnel, store)
    assert largest < 100_000 < SMALL
    assert funnel.effects.visits == {"organic": n}
    assert funnel.forgotten_ids == n - MAX_VISIT_IDS
    rebuilt = Funnel(rules, {}, store, "event")
    rebuilt.rebuild([], [0])
    assert rebuilt.window_entries() == funnel.window_entries()
    assert rebuilt.watermark == funnel.watermark


def test_a_duplicate_counts_again_exactly_once_its_id_is_forgotten() -> None:
    funnel, store = _held_funnel(FunnelRules())
    first = visit("v-0", "bot", T0)
    funnel.apply(0, first)
    for i in range(1, MAX_VISIT_IDS):
        funnel.apply(0, visit(f"v-{i}", "bot", T0 + i))
    # MAX_VISIT_IDS - 1 visits applied after it: its id is still kept.
    assert funnel.apply(0, first) == "duplicate"
    funnel.apply(0, visit("one-more", "bot", T0 + MAX_VISIT_IDS))
    assert funnel.forgotten_ids == 1
    assert funnel.apply(0, first) == "applied"  # forgotten: it counts again
    _write_back(funnel, store)
    assert funnel.apply(0, first) == "duplicate"  # and is kept again


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40), st.integers(0, 6 * 24)), max_size=80),
    st.sampled_from(["UTC", "Asia/Kolkata", "America/New_York"]),
)
def test_window_counts_rebuilt_from_capped_states_equal_the_live_ones(
    plan: list[tuple[int, int, int]], zone: str
) -> None:
    """With a cap of 3 ids, in any order and time zone, the gauges after a rebuild are the
    live gauges (duplicates of forgotten ids count again in both)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(visits_module, "MAX_VISIT_IDS", 3)
        _live_and_rebuilt_windows_agree(plan, zone)


def _live_and_rebuilt_windows_agree(plan: list[tuple[int, int, int]], zone: str) -> None:
    windows = (parse_window("1h", zone), parse_window("1d", zone))
    rules = FunnelRules(windows=windows, dedupe_horizon=2 * DAY)
    funnel, store = _held_funnel(rules)
    for n, (visitor, event, hours) in enumerate(plan):
        funnel.apply(0, visit(f"e{event}", f"visitor-{visitor}", T0 + hours * HOUR + n))
        if n % 7 == 6:
            _write_back(funnel, store)
    _write_back(funnel, store)
    rebuilt = Funnel(rules, {}, store, "event")
    rebuilt.rebuild([], [0])
    assert rebuilt.window_entries() == funnel.window_entries()


def test_a_lead_moved_back_and_forth_stays_small_with_exact_counts() -> None:
    """50,000 stage changes of one lead, with team changes: first entries, the clock and
    re-entry counts are exact; the state keeps the bounded parts only."""
    funnel = Funnel(FunnelRules(), {}, {}, "event")
    store = funnel.leads
    assert isinstance(store, dict)
    funnel.apply(0, lead("created", "hot", T0, team="a"))
    n = 50_000
    for i in range(n):
        to = ("mql", "sql", "opportunity")[i % 3]
        team = f"team-{i % 5}" if i % 2 else None
        funnel.apply(0, stage(f"s-{i}", "hot", to, T0 + 60.0 * (i + 1), team=team))
    state = LeadState.decode(store["hot"])
    assert len(store["hot"]) < 20_000 < SMALL
    assert len(state.seen) == MAX_LEAD_IDS
    assert funnel.forgotten_ids == n + 1 - MAX_LEAD_IDS
    assert all(len(times) <= MAX_STAGE_TIMES for times in state.entries.values())
    assert len(state.teams) == MAX_TEAM_ASSIGNMENTS
    assert state.first_entry("mql") == T0 + 60.0 and state.first_entry("sql") == T0 + 120.0
    assert state.max_changed_at == T0 + 60.0 * n
    assert state.current_team == "team-4"  # the last override (i = n - 1 is odd)
    entries = Counter(stage for stage, _ in funnel.effects.entries)
    assert entries["mql"] == entries["sql"] == entries["opportunity"] == 1
    moves = Counter(("mql", "sql", "opportunity")[i % 3] for i in range(n))
    assert Counter(funnel.effects.reentries) == {s: k - 1 for s, k in moves.items()}
    # A duplicate of a stage change whose id was forgotten counts once more as a re-entry,
    # and changes nothing else.
    before = funnel.effects.reentries[:]
    assert funnel.apply(0, stage("s-0", "hot", "mql", T0 + 60.0)) == "applied"
    assert funnel.effects.reentries == [*before, "mql"]
    assert LeadState.decode(store["hot"]).first_entry("mql") == T0 + 60.0


def test_a_lead_reassigned_past_the_bound_stays_exact_held_or_not() -> None:
    """An open lead reassigned to another team every 12 minutes for a day and a half: the
    bound drops the assignments after the 63rd, some of which held at its warning instants
    and its deadline (the lead's team there is then the 63rd's, as stored). Every event is
    applied (before the status was derived after the bound, the next event found the lead
    counted under a team its stored state no longer gave, and failed), and the gauges equal
    a rebuild from the stored states. Held within fetches, as the worker holds it (and
    carries each event's derived facts to the next, ``Funnel._last_lead``), with a new lead
    moving the clock now and then and duplicates in between, it ends the same as written
    through."""
    through = Funnel(FunnelRules(), {}, {}, "event")
    held_store: dict[str, bytes] = {}
    held = Funnel(FunnelRules(), held_store, {}, "event")
    held.hold_lead_states = True
    events = [lead("created", "hot", T0, team="a")]
    for i in range(3 * MAX_TEAM_ASSIGNMENTS * 4):
        team = f"team-{i % 7}" if i % 4 == 1 else None
        events.append(stage(f"s-{i}", "hot", "mql", T0 + 180.0 * (i + 1), team=team))
        if i % 50 == 49:  # another lead: the lead topic's watermark, and so the clock, moves
            events.append(lead(f"c-{i}", f"other-{i}", T0 + 180.0 * (i + 1)))
        if i % 30 == 29:
            events.append(events[-3])  # a duplicate
    for i, event in enumerate(events):
        assert held.apply(0, event) == through.apply(0, event)
        if i % 37 == 36:  # a fetch ends
            held_store.update((k, s.encode()) for k, s in held.take_held_leads().items())
    held_store.update((k, s.encode()) for k, s in held.take_held_leads().items())
    assert len(LeadState.decode(held_store["hot"]).teams) == MAX_TEAM_ASSIGNMENTS
    assert held_store == through.leads
    rebuilt = Funnel(FunnelRules(), dict(through.leads), {}, "event")
    rebuilt.rebuild([0], [])
    assert rebuilt.followup_gauges() == through.followup_gauges() == held.followup_gauges()
    assert rebuilt.stage_gauges() == through.stage_gauges() == held.stage_gauges()
    for f in (held, through):
        f.advance(T0 + 30 * DAY)
    assert held.forgotten_ids == through.forgotten_ids > 0
    assert held.window_entries() == through.window_entries()
    assert held.followup_gauges() == through.followup_gauges()
    e, f = held.effects, through.effects
    for name in ("entries", "reentries", "followups", "breaches", "warnings", "stage_times"):
        assert Counter(getattr(e, name)) == Counter(getattr(f, name)), name
    assert f.breaches and f.warnings


def test_a_held_lead_released_later_counts_its_forgotten_reentries() -> None:
    funnel = Funnel(FunnelRules(), {}, {}, "event")
    for i in range(3 * MAX_STAGE_TIMES):
        funnel.apply(0, stage(f"s-{i}", "orphan", "mql", T0 + i))
    assert funnel.effects.reentries == []  # held: not counted yet
    funnel.apply(0, lead("created", "orphan", T0 + 100))
    assert Counter(funnel.effects.reentries)["mql"] == 3 * MAX_STAGE_TIMES - 1


def test_the_largest_states_the_bounds_allow_are_far_below_kafkas_limit() -> None:
    """Every id at its longest (128 characters that JSON escapes: 768 bytes each before they
    were digested), every cell of a week of 1 h windows, every stage and team at its bound."""
    worst_id = "\x01" * 128
    visitor = VisitorState(7, latest=T0)
    visitor.visits = {dedupe_key(f"{worst_id}{i}"): T0 + i + 0.123 for i in range(MAX_VISIT_IDS)}
    visitor.cells = {T0 + HOUR * i: 999_999 for i in range(24 * 7)}
    lead_state = LeadState(7, created_at=T0, source="s" * 64, team="t" * 64)
    lead_state.seen = {dedupe_key(f"{worst_id}{i}"): T0 + i + 0.123 for i in range(MAX_LEAD_IDS)}
    stages = FunnelRules().all_stages
    lead_state.entries = {s: [T0 + i + 0.123 for i in range(MAX_STAGE_TIMES)] for s in stages}
    lead_state.dropped_reentries = {s: 10**9 for s in stages}
    lead_state.teams = [(T0 + i + 0.123, "t" * 64) for i in range(MAX_TEAM_ASSIGNMENTS)]
    sizes = {"visitor": len(visitor.encode()), "lead": len(lead_state.encode())}
    print(f"largest states: {sizes}")
    assert max(sizes.values()) < SMALL


def test_states_written_before_the_ids_were_digested_are_read() -> None:
    old_visitor = encode_json([3, {"e1": T0, "e2": T0 + 5}])
    state = VisitorState.decode(old_visitor)
    assert set(state.visits) == {dedupe_key("e1"), dedupe_key("e2")}
    assert state.latest == T0 + 5 and VisitorState.clock_facts(old_visitor) == (3, T0 + 5)
    old_lead = encode_json([3, T0, "organic", [[T0, "a"]], {"lead": [T0]}, {"l1": T0}, T0, 0, "a"])
    assert LeadState.decode(old_lead).seen == {dedupe_key("l1"): T0}
    funnel = Funnel(FunnelRules(), {"x": old_lead}, {"v": old_visitor}, "event")
    assert funnel.apply(3, lead("l1", "x", T0)) == "duplicate"
    assert funnel.apply(3, visit("e2", "v", T0 + 5)) == "duplicate"


def _reference_dedupe_key(event_id: str) -> str:
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return base64.urlsafe_b64encode(digest)[:11].decode("ascii")


@given(
    st.text(max_size=130)
    | st.builds(lambda a, b: f"{a}\ud800{b}", st.text(max_size=60), st.text(max_size=60))
)
def test_dedupe_key_is_the_urlsafe_base64_of_the_blake2b_digest(event_id: str) -> None:
    """The stored form of an id never changes: states written before must still match."""
    assert dedupe_key(event_id) == _reference_dedupe_key(event_id)
