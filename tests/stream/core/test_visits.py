"""The visitor state: the first visit's shortcut encodes what the general path does."""

from hypothesis import given
from hypothesis import strategies as st

from stream.core.visits import VisitorState

times = st.floats(min_value=0, max_value=2e9, allow_nan=False)


@given(st.integers(0, 63), st.text(min_size=1, max_size=20), times, times)
def test_encode_first_equals_a_new_state_with_one_visit(
    partition: int, event_id: str, t: float, horizon_start: float
) -> None:
    state = VisitorState(partition)
    state.visits[event_id] = t
    state.forget_before(horizon_start)
    assert VisitorState.encode_first(partition, event_id, t, horizon_start) == state.encode()
    # A visit before the horizon is not kept, one at it or after is.
    kept = VisitorState.decode(VisitorState.encode_first(partition, event_id, t, horizon_start))
    assert (event_id in kept.visits) == (t >= horizon_start)
