"""The open-lead index: a heap of times with removal by value, against a plain list."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.timeheap import TimeHeap

# Few distinct values, so that equal times (leads with the same deadline) are common.
times = st.integers(min_value=0, max_value=20).map(float)
ops = st.lists(st.tuples(st.sampled_from(["push", "remove", "pop_below", "min"]), times))


@given(ops)
def test_behaves_as_a_sorted_multiset(operations: list[tuple[str, float]]) -> None:
    heap, expected = TimeHeap(), []
    for op, t in operations:
        if op == "push":
            heap.push(t)
            expected.append(t)
        elif op == "remove" and expected:
            victim = expected[int(t) % len(expected)]
            heap.remove(victim)
            expected.remove(victim)
        elif op == "pop_below":
            assert sorted(heap.pop_below(t)) == sorted(x for x in expected if x < t)
            expected = [x for x in expected if x >= t]
        assert heap.min() == min(expected, default=None)
        assert len(heap) == len(expected)


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_many_removals_are_dropped_and_the_rest_kept(seed: int) -> None:
    rng = random.Random(seed)
    heap, expected = TimeHeap(), []
    for _ in range(20_000):
        t = float(rng.randrange(5_000))
        heap.push(t)
        expected.append(t)
    rng.shuffle(expected)
    removed, expected = expected[:15_000], expected[15_000:]
    for t in removed:
        heap.remove(t)
    # Removed values do not pile up (the heap compacts once half of it is removed) ...
    assert heap.stored < 2 * len(expected) + 1024
    # ... and what is left comes out in order.
    assert heap.min() == min(expected)
    assert heap.pop_below(6_000.0) == sorted(expected)
    assert heap.min() is None
