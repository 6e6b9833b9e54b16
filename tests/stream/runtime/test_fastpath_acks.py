"""Each override in the worker's transport (stream/runtime/seam/transport.py) against Faust's
own method: acknowledgements (``Consumer.ack``), commit offsets (``Consumer._new_offset``),
gaps (``Consumer._add_gap``) and high watermarks (``AIOKafkaConsumerThread._highwaters``).

Faust's consumer methods only read and write the consumer's bookkeeping (acknowledged offsets,
their index, gaps, committed offsets), so both run here on that bookkeeping alone, side by side.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from time import monotonic
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.subscription_state import SubscriptionState
from faust.sensors.monitor import Monitor
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from intervaltree import IntervalTree

from stream.runtime.seam.membership import Membership
from stream.runtime.seam.transport import (
    BACKLOG_RECORDS,
    FETCH_MAX_WAIT_MS,
    BatchConsumer,
    FunnelConsumerThread,
    Transport,
    WorkerHooks,
    first_run_end,
)

TP = ("funnel.visits", 0)


def _never_stopped(exc: Exception) -> NoReturn:
    raise AssertionError(f"stopped: {exc}")


def _bookkeeping(committed: int | None = None) -> Any:
    book = SimpleNamespace(
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None),
        _acked_high={},
        _n_acked=0,
        # What Faust's own ``ack`` also touches.
        app=SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True)),
        _unacked_messages=set(),
        _waiting_for_ack=None,
    )
    book._committed_offset[TP] = committed
    return book


class _Message:
    """What ``Consumer.ack`` reads and sets of a message."""

    def __init__(self, tp: Any, offset: int) -> None:
        self.tp, self.topic, self.offset, self.acked = tp, tp[0], offset, False


def _faust_ack(book: Any, offsets: list[int]) -> None:
    """Faust's own ``Consumer.ack``, message by message, as its streams call it."""
    for offset in offsets:
        FaustConsumer.ack(book, _Message(TP, offset))


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


async def test_gaps_are_fausts_add_gap() -> None:
    """``_record_gap`` is Faust's ``_add_gap`` without yielding to the loop, except that a
    committed offset that never arrives is a gap too (Faust's starts one after it, so its
    commit would wait for that offset for good)."""
    rng = random.Random(23)
    for _ in range(2000):
        committed = rng.choice([None, 0, 3, 10, 20])
        first = rng.randint(0, 30)
        last = first + rng.randint(-1, 8)
        ours, faust = _bookkeeping(committed), _bookkeeping(committed)
        for book in (ours, faust):  # an earlier gap, to merge with
            book._gap[TP].addi(40, 42)
        BatchConsumer._record_gap(ours, TP, first, last)
        await FaustConsumer._add_gap(faust, TP, first, last)
        expected = faust._gap[TP].copy()
        if committed is not None and first <= committed <= last:
            expected.addi(committed, committed + 1)
            expected.merge_overlaps(strict=False)
        assert ours._gap[TP] == expected, (first, last, committed)


def _thread(listed: dict[Any, int], ends: dict[int, int] | None) -> Any:
    """A consumer thread whose aiokafka consumer lists ``listed``; hooks report ``ends``."""

    async def end_offsets_listed(partitions: list[Any]) -> dict[Any, int]:
        return {tp: listed[tp] for tp in partitions}

    async def end_offsets_fetched(topic: str) -> dict[int, int]:
        assert ends is not None
        return ends

    async def nothing() -> None:
        return None

    hooks = None
    if ends is not None:
        hooks = WorkerHooks(
            frozenset(), lambda fetch: None, nothing, end_offsets_fetched, _never_stopped
        )
    thread = FunnelConsumerThread.__new__(FunnelConsumerThread)
    thread.consumer = SimpleNamespace(in_transaction=False)
    thread.transport = Transport.__new__(Transport)
    thread.transport.hooks = hooks
    thread._consumer = SimpleNamespace(end_offsets=end_offsets_listed)
    return thread


async def test_high_watermarks_are_fausts_or_the_fetched_end_if_higher() -> None:
    tps = [TopicPartition("changelog", p) for p in range(3)]
    listed = {tps[0]: 0, tps[1]: 7, tps[2]: 12}
    faust = await AIOKafkaConsumerThread._highwaters(_thread(listed, None), tps)
    assert faust == listed
    # Without hooks the override is Faust's method; with them, the larger end per partition
    # (an empty partition is not asked again).
    assert await FunnelConsumerThread._highwaters(_thread(listed, None), tps) == faust
    ours = await FunnelConsumerThread._highwaters(_thread(listed, {0: 5, 1: 9, 2: 10}), tps)
    assert ours == {tps[0]: 0, tps[1]: 9, tps[2]: 12}


async def test_the_fetch_wait_is_the_one_aiokafka_takes_as_an_option() -> None:
    """The attribute set after Faust builds its consumer is where aiokafka keeps
    ``fetch_max_wait_ms``, which Faust passes as 1,500 ms."""
    consumer = AIOKafkaConsumer(fetch_max_wait_ms=FETCH_MAX_WAIT_MS)
    assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
    await consumer.stop()


def test_handled_partitions_get_the_inbound_time_fausts_livelock_check_reads() -> None:
    """Faust's check logs "Stream has not started processing" for a partition with records
    fetched past its position and no inbound time (``Monitor.stream_inbound_time``), once the
    worker has run for ``stream_processing_timeout``; the fast path must set it, as Faust's
    streams do per event."""
    book = _bookkeeping()
    book.app.monitor = Monitor()
    book._read_offset = defaultdict(lambda: None)
    book._buffered_partitions = set()
    book.batch_topics = frozenset({TP[0]})
    handled: list[Any] = []
    book.batch_handler = handled.extend
    book._ack_offsets = lambda taken: BatchConsumer._ack_offsets(book, taken)
    book._mark_inbound = lambda batch: BatchConsumer._mark_inbound(book, batch)
    book.membership = Membership()  # of a consumer without a group: always a member
    tp, other = TopicPartition(*TP), TopicPartition("funnel.changelog", 0)
    book._read_offset[tp] = 0
    before = monotonic()
    records = {tp: [_Message(tp, 0), _Message(tp, 1)], other: [_Message(other, 0)]}
    others = BatchConsumer._handle_batch_topics(book, records, None)
    assert [p for p, _ in handled] == [tp] and [p for p, _ in others] == [other]
    inbound = book.app.monitor.stream_inbound_time
    assert set(inbound) == {tp} and before <= inbound[tp] <= monotonic()


async def test_a_backlog_is_not_over_while_a_partition_has_no_fetch_answer() -> None:
    """The early commit after a backlog (``_maybe_commit``) must wait for every assigned
    partition: one that no fetch has answered yet has records the worker has not seen."""
    subscription = SubscriptionState()
    subscription.subscribe(topics={TP[0]})
    tps = [TopicPartition(TP[0], p) for p in range(3)]
    subscription.assign_from_subscribed(set(tps))
    assignment = subscription.subscription.assignment
    consumer = SimpleNamespace(_subscription=subscription)
    book = SimpleNamespace(
        _thread=SimpleNamespace(_ensure_consumer=lambda: consumer),
        _read_offset={},
        batch_topics=frozenset({TP[0]}),
        _backlog=0,
    )

    def caught_up(highwaters: list[int | None], read: list[int]) -> bool:
        for tp, high, position in zip(tps, highwaters, read, strict=True):
            assignment.state_value(tp).highwater = high
            book._read_offset[tp] = position
        return BatchConsumer._caught_up(book)

    assert not caught_up([6_000, 0, None], [0, 0, 0])  # a backlog starts
    assert book._backlog == 6_000
    # Partitions 0 and 1 read to their ends; partition 2 not answered yet.
    assert not caught_up([6_000, 0, None], [6_000, 0, 0])
    assert caught_up([6_000, 0, 0], [6_000, 0, 0])  # answered: it was empty
    assert not caught_up([6_000, 0, 10], [6_000, 0, 0])  # or it has records to read


async def test_a_backlog_end_is_committed_after_a_commit_already_in_flight() -> None:
    """Faust's ``commit`` waits for a commit in flight and then commits nothing: the offsets
    acknowledged since that one started must get a commit of their own, before the worker
    logs that they are committed."""
    loop = asyncio.get_running_loop()
    in_flight: asyncio.Future[None] = loop.create_future()
    commits: list[str] = []

    async def force_commit(topics: Any = None, start_new_transaction: bool = True) -> bool:
        commits.append("the backlog's last acks")
        return True

    book = SimpleNamespace(
        app=SimpleNamespace(client_only=False),
        loop=loop,
        _commit_fut=in_flight,  # the timer's commit, started before the last fetch's acks
        _backlog=BACKLOG_RECORDS,
        _caught_up=lambda: True,
        force_commit=force_commit,
    )
    book.maybe_wait_for_commit_to_finish = lambda: FaustConsumer.maybe_wait_for_commit_to_finish(
        book
    )
    book.commit = lambda: FaustConsumer.commit(book)
    ending = asyncio.create_task(BatchConsumer._maybe_commit(book))
    await asyncio.sleep(0.01)
    assert commits == []  # waiting for the commit in flight
    book._commit_fut = None  # that commit ends, as Faust's own does
    in_flight.set_result(None)
    await asyncio.wait_for(ending, 1)
    assert commits == ["the backlog's last acks"]
