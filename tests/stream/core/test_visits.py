"""The visitor state: the first visit's shortcut, and states held within a fetch."""

import random

from hypothesis import given
from hypothesis import strategies as st

from stream.core.bounds import dedupe_key
from stream.core.funnel import Funnel
from stream.core.rules import FunnelRules
from stream.core.visits import VisitCells, VisitorState
from tests.stream.core.scenario import visit

times = st.floats(min_value=0, max_value=2e9, allow_nan=False)


@given(st.integers(0, 63), st.text(min_size=1, max_size=20), times, times)
def test_encode_first_equals_a_new_state_with_one_visit(
    partition: int, event_id: str, t: float, horizon_start: float
) -> None:
    key = dedupe_key(event_id)  # what states keep, and all encode_first is given
    state = VisitorState(partition, latest=t)
    state.visits[key] = t
    state.forget_before(horizon_start)
    assert VisitorState.encode_first(partition, key, t, horizon_start) == state.encode()
    # A visit before the horizon is not kept, one at it or after is.
    kept = VisitorState.decode(VisitorState.encode_first(partition, key, t, horizon_start))
    assert (key in kept.visits) == (t >= horizon_start)
    assert kept.latest == t


visit_plans = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 12 * 24), st.booleans()),
    max_size=60,
)


@given(visit_plans, st.integers(0, 2**16))
def test_holding_states_in_fetches_gives_the_stores_and_windows_of_writing_through(
    plan: list[tuple[int, int, int, bool]], cut_seed: int
) -> None:
    """A worker holds changed visitor states until the end of each fetch; a report writes
    every change at once. Both read the same stream: same stores, windows and outcomes."""
    rules = FunnelRules(dedupe_horizon=2 * 86400.0)  # visits up to 12 days apart get forgotten
    events = [
        visit(f"v{n}", f"visitor-{visitor}", 1.79e9 + hours * 3600.0)
        for visitor, n, hours, _ in plan
    ]
    through = Funnel(rules, {}, {}, "event")
    held_store: dict[str, bytes] = {}
    held = Funnel(rules, {}, held_store, "event")
    held.hold_visitor_states = True
    rng = random.Random(cut_seed)
    for event in events:
        partition = int(event.visitor_id[-1]) % 2
        assert held.apply(partition, event) == through.apply(partition, event)
        if rng.random() < 0.3:  # the end of a fetch
            _write_back(held, held_store)
    _write_back(held, held_store)
    assert held_store == through.visitors
    assert held.window_entries() == through.window_entries()
    assert held.effects.visits == through.effects.visits


def _write_back(funnel: Funnel, store: dict[str, bytes]) -> None:
    for visitor_id, state in funnel.take_held_visitors().items():
        store[visitor_id] = state.encode()


def test_a_hot_visitor_is_decoded_once_per_fetch() -> None:
    rules = FunnelRules()
    store: dict[str, bytes] = {}
    funnel = Funnel(rules, {}, store, "event")
    funnel.hold_visitor_states = True
    for i in range(2_000):
        funnel.apply(0, visit(f"e{i}", "hot", 1.79e9 + i))
    # Only the first visit went to the store; the rest stayed decoded until the fetch ends.
    assert len(VisitorState.decode(store["hot"]).visits) == 1
    _write_back(funnel, store)
    assert len(VisitorState.decode(store["hot"]).visits) == 2_000


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 100), st.integers(0, 100))))
def test_add_visit_keeps_exactly_the_visits_at_or_after_each_horizon(
    steps: list[tuple[int, int, int]],
) -> None:
    state, expected = VisitorState(0), {}
    cells = VisitCells(FunnelRules().windows)
    for n, t, horizon_start in steps:
        assert state.add_visit(f"e{n}", float(t), float(horizon_start), cells, 100.0) == 0
        expected[f"e{n}"] = float(t)
        expected = {eid: v for eid, v in expected.items() if v >= horizon_start}
        assert state.visits == expected
        # Never above the true oldest (that would skip a visit due to be forgotten).
        assert state.oldest is not None
        assert state.oldest <= min(expected.values(), default=float("inf"))
