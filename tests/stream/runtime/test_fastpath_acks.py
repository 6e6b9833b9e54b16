"""The fast path's acknowledgements and commit offsets are Faust's, computed without a Python
step per offset (stream/runtime/fastpath.py: ``_ack_offsets``, ``_new_offset``, ``first_run_end``).

Faust's methods only read and write the consumer's bookkeeping (acknowledged offsets, their
index, gaps, committed offsets), so both run here on that bookkeeping alone, side by side.
"""

from __future__ import annotations

import random
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from intervaltree import IntervalTree

from stream.runtime.fastpath import BatchConsumer, first_run_end

TP = ("funnel.visits", 0)


def _bookkeeping(committed: int | None = None) -> Any:
    book = SimpleNamespace(
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None),
        _acked_high={},
        _n_acked=0,
    )
    book._committed_offset[TP] = committed
    return book


def _faust_ack(book: Any, offsets: list[int]) -> None:
    """``Consumer.ack`` for each offset, as Faust does it message by message."""
    committed = book._committed_offset[TP]
    for offset in offsets:
        if (committed is None or offset >= committed) and offset not in book._acked_index[TP]:
            book._acked_index[TP].add(offset)
            book._acked[TP].append(offset)
            book._n_acked += 1


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [([7], 1), ([4, 5, 6, 9], 3), ([4, 6], 1), ([0, 1, 2, 3], 4), ([1, 2, 3, 10, 11], 3)],
)
def test_first_run_end(offsets: list[int], expected: int) -> None:
    assert first_run_end(offsets) == expected


def test_first_run_end_equals_a_linear_scan() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        offsets = sorted(rng.sample(range(60), rng.randint(1, 40)))
        run = 1
        while run < len(offsets) and offsets[run] == offsets[run - 1] + 1:
            run += 1
        assert first_run_end(offsets) == run, offsets


def test_acks_of_fetches_and_redeliveries_equal_fausts_one_by_one() -> None:
    rng = random.Random(11)
    for _ in range(300):
        committed = rng.choice([None, 0, 5, 40])
        ours, faust = _bookkeeping(committed), _bookkeeping(committed)
        position = rng.randint(0, 50)
        for _ in range(rng.randint(1, 8)):
            if rng.random() < 0.3:
                position = max(0, position - rng.randint(1, 30))  # a seek back: redelivery
            count = rng.randint(1, 20)
            offsets = list(range(position, position + count))
            if rng.random() < 0.2:  # a hole (compaction, markers)
                offsets = sorted(rng.sample(offsets, max(1, count // 2)))
            position = offsets[-1] + 1
            BatchConsumer._ack_offsets(ours, [(TP, offsets)])
            _faust_ack(faust, offsets)
            assert ours._acked[TP] == faust._acked[TP]
            assert ours._acked_index[TP] == faust._acked_index[TP]
            assert ours._n_acked == faust._n_acked


def _gaps(rng: random.Random, top: int, acked: list[int]) -> IntervalTree:
    """Holes in the offsets: never delivered, so never acknowledged."""
    tree = IntervalTree()
    for _ in range(rng.randint(0, 3)):
        begin = rng.randint(0, top)
        end = begin + rng.randint(1, 5)
        if not any(begin <= o < end for o in acked):
            tree.addi(begin, end)
    tree.merge_overlaps()
    return tree


def test_commit_offset_equals_fausts_for_any_acks_and_gaps() -> None:
    rng = random.Random(17)
    for _ in range(3000):
        committed = rng.choice([None, 0, 1, 10, 20])
        acked = rng.sample(range(0, 60), rng.randint(0, 30))  # any order, distinct
        gaps = _gaps(rng, 60, acked)
        ours, faust = _bookkeeping(committed), _bookkeeping(committed)
        for book in (ours, faust):
            book._acked[TP] = list(acked)
            book._acked_index[TP] = set(acked)
            book._gap[TP] = gaps.copy()
        # Faust's method expects what it is always given: no offset below the committed one.
        if committed is not None:
            faust._acked[TP] = [o for o in acked if o >= committed]
            faust._acked_index[TP] = set(faust._acked[TP])
        expected = FaustConsumer._new_offset(faust, TP)
        assert BatchConsumer._new_offset(ours, TP) == expected, (acked, committed, gaps)
        assert sorted(ours._acked[TP]) == sorted(set(faust._acked[TP]))
        assert ours._acked_index[TP] == set(ours._acked[TP])
        assert ours._gap[TP] == faust._gap[TP]


def test_a_repeated_offset_does_not_hold_the_commit_back() -> None:
    """After a seek back an offset can be acknowledged twice before a commit; Faust's own
    method then stops at the repeat (the offset crept forward one record per commit)."""
    book = _bookkeeping(committed=100)
    book._acked[TP] = [100, 101, 102, 101, 102, 103]
    book._acked_index[TP] = {100, 101, 102, 103}
    assert BatchConsumer._new_offset(book, TP) == 104
    assert book._acked[TP] == []
