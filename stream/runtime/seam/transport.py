"""The worker's Kafka transport, registered with Faust as ``funnel://`` (pyproject.toml,
entry point ``faust.transports``): Faust's aiokafka transport with a consumer fast path.

Faust's consumer hands every message on by itself: ``Consumer._drain_messages`` awaits
``wait_first(callback(message), suspend_flow.wait())`` per message, the conductor decodes it
into an ``Event`` and queues it for the agent's stream, and the stream acknowledges it when
the agent moves on. On two cores that machinery alone tops out near 13,000 messages/s.

``BatchConsumer`` keeps Faust's consumer (group membership, rebalances, pausing, recovery,
commits) and changes one thing: the records of the *batch topics* (the funnel's inputs) in one
fetch are given to the worker's handler in one synchronous call, and acknowledged together when
it returns. Every other topic (the tables' changelogs during recovery) still goes the usual way.
The worker hands its handler to the app's transport with ``attach(app, WorkerHooks(...))``.

What Faust guarantees stays true (tests/stream/runtime/test_worker_pipeline.py, test_exactness.py,
tests/reliability/test_kill9.py and test_rebalance.py check it end to end):

- records of a partition this worker no longer owns, or of a fetch from before a rebalance
  (another generation), or fetched while the flow is stopped, are not handled;
- a record is acknowledged only after the handler returned, and Faust commits an offset only
  after flushing the producer (the changelog and dead letters the handler sent), so a crash
  replays what was not committed, which the per-key states recognise;
- the handler runs without yielding to the event loop, so a rebalance (which Faust runs on the
  loop) sees a batch either not started or finished: never half applied;
- a record before the partition's read position (a redelivery after a seek) is skipped, and a
  hole in the offsets (compaction, transaction markers) is recorded as a gap, as Faust does.

And one thing Faust does not guard against: a fetch held by a worker the group may have dropped
meanwhile (its process stood still past the session timeout) is not handled, or, when the pause
came during its handling, nothing of it leaves the process (``stream.runtime.seam.membership``,
tests/reliability/test_paused_worker.py).

This module overrides private methods of Faust's consumer and consumer thread; each is
checked against Faust's own by tests/stream/runtime/test_fastpath_acks.py (docs/internals.md).
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from time import monotonic
from typing import Any, NoReturn

from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import ack_lock

from stream.runtime.seam import fetch
from stream.runtime.seam.membership import Membership

# The broker URL scheme of this transport (the entry point's name in pyproject.toml).
SCHEME = "funnel"
# Called with the new records of one fetch: (TopicPartition, records in offset order) pairs.
BatchHandler = Callable[[Sequence[tuple[Any, Sequence[Any]]]], None]
Backpressure = Callable[[], Awaitable[None]]
# A topic's high watermark per partition, as a fetch reports it.
EndOffsets = Callable[[str], Awaitable[Mapping[int, int]]]
# How long the broker may hold a fetch that finds no new records. Faust asks for 1.5 s; a
# fetch in flight holds back records that arrive meanwhile on the broker (the next fetch
# waits for it), which under a steady trickle delayed records by up to that long.
FETCH_MAX_WAIT_MS = 20
# A backlog: at least this many records of the batch topics on the broker past the worker's
# read positions after a fetch. Under steady traffic the worker reads everything there is
# at each fetch (a few hundred records at 5,000 /s); after a restart, a burst or a stall it
# does not. When a fetch reads the last record of a backlog the offsets are committed at
# once instead of at the next commit tick, up to ``broker_commit_interval`` later.
BACKLOG_RECORDS = 5_000
# How long the fetch loop waits before fetching again when the group membership is in doubt.
MEMBERSHIP_RETRY_S = 0.1

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerHooks:
    """What the worker gives its app's transport (``attach``).

    ``batch_topics``' records go to ``handle_batch`` a fetch at a time, after awaiting
    ``backpressure()`` (the producer keeping up). ``end_offsets`` corrects the high
    watermarks Faust reads before recovering a table (see ``FunnelConsumerThread``).
    ``stop_uncommitted`` ends the process at once, committing and sending nothing more: what
    the transport calls when a fetch was handled but may belong to another member by now
    (``stream.runtime.seam.membership``).
    """

    batch_topics: frozenset[str]
    handle_batch: BatchHandler
    backpressure: Backpressure
    end_offsets: EndOffsets
    stop_uncommitted: Callable[[Exception], NoReturn]


def broker_url(servers: Iterable[str]) -> str:
    """Faust's ``broker`` argument for this transport: ``funnel://h1:9092;funnel://h2:9092``."""
    return ";".join(f"{SCHEME}://{server}" for server in servers)


def attach(app: Any, hooks: WorkerHooks) -> None:
    """Give ``app`` (built with ``broker_url(...)``, not started yet) the worker's hooks."""
    transport = app.transport
    if not isinstance(transport, Transport):
        raise TypeError(
            f"the app's transport is {type(transport).__qualname__}, not {SCHEME}:// "
            "(is the funnel package installed, with its entry points?)"
        )
    transport.hooks = hooks
    # The batch topics' records as light named tuples (stream.runtime.seam.fetch).
    fetch.use_for(hooks.batch_topics)
    fetch.install()


class FunnelConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with a short fetch wait (``FETCH_MAX_WAIT_MS``) and high
    watermarks corrected for the embedded broker.

    Faust asks the broker for each changelog partition's end with ListOffsets ("latest")
    before recovering a table, and refuses to start (``ConsistencyError``) when the local
    store has applied more than that. The embedded broker (Tansu 0.6.0) answers the last
    record *batch*'s base offset + 1, short of the real end whenever that batch holds several
    records, which batched changelog writes always produce. ``_highwaters`` takes the larger
    of that answer and the high watermark a fetch reports (``WorkerHooks.end_offsets``): right
    on Tansu and on Apache Kafka alike (there the two agree).
    """

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer: AIOKafkaConsumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by its fetcher at start
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # The coordinator exists once the consumer started, and joins at the subscription.
        consumer, started = self.consumer, self._consumer
        if isinstance(consumer, BatchConsumer) and started is not None:
            consumer.membership.watch(started._coordinator)

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        listed: Mapping[Any, int] = await super()._highwaters(partitions)
        hooks = self.transport.hooks if isinstance(self.transport, Transport) else None
        if hooks is None:
            return listed
        by_topic: dict[str, list[Any]] = {}
        for tp in partitions:
            if listed.get(tp):  # an empty partition is listed right: nothing to correct
                by_topic.setdefault(tp.topic, []).append(tp)
        corrected = dict(listed)
        for topic, tps in by_topic.items():
            ends = await hooks.end_offsets(topic)
            for tp in tps:
                corrected[tp] = max(corrected.get(tp) or 0, ends.get(tp.partition, 0))
        return corrected


def first_run_end(offsets: Sequence[int]) -> int:
    """How many of ``offsets`` (ascending, distinct, not empty) form its first run of
    consecutive numbers: ``[4, 5, 6, 9]`` gives 3."""
    first, n = offsets[0], len(offsets)
    if offsets[-1] - first == n - 1:
        return n
    # offsets[i] - first == i holds up to the first hole and never after it.
    inside, outside = 0, n - 1
    while outside - inside > 1:
        middle = (inside + outside) // 2
        if offsets[middle] - first == middle:
            inside = middle
        else:
            outside = middle
    return outside


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with whole-fetch delivery for the batch topics."""

    def __init__(self, transport: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(transport, *args, **kwargs)
        hooks: WorkerHooks | None = transport.hooks
        if hooks is None:
            raise RuntimeError(f"{SCHEME}:// transport without worker hooks (see attach)")
        self.batch_topics = hooks.batch_topics
        self.batch_handler = hooks.handle_batch
        self.backpressure = hooks.backpressure
        self.stop_uncommitted = hooks.stop_uncommitted
        self.membership = Membership()  # watched by the consumer thread once it started
        # Per partition, the highest offset this worker acknowledged (see _ack_offsets).
        self._acked_high: dict[Any, int] = {}
        # The largest lag seen since a fetch left a backlog unread (0: none; see _caught_up).
        self._backlog = 0

    def committed_offset(self, tp: Any) -> int | None:
        """The offset this consumer last committed for ``tp`` (None before the first).

        Faust keeps it without a public accessor; asking the broker on every scrape would be
        a request per partition.
        """
        committed: int | None = self._committed_offset.get(tp)
        return committed

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return FunnelConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        ending: tuple[type[BaseException], ...] = (
            asyncio.CancelledError,
            *self.consumer_stopped_errors,
        )
        try:
            while not (stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                # The generation these records belong to: the wait above can span a
                # rebalance (it waits for the flow to resume), so it is read after it, as
                # Faust's ``getmany`` does.
                generation = self.app.consumer_generation_id
                # Every wait comes before the checks below, never between them and the
                # handler: a rebalance can run during a wait (it runs on the loop), and
                # records handled after it would belong to partitions revoked meanwhile.
                await self.sleep(0)  # the loop runs between fetches (health, timers)
                await self.app.producer.buffer.wait_until_ebb()
                await self.backpressure()
                if not records or self.should_stop:
                    continue
                if not self.flow_active:
                    # Fetched across a rebalance: go back to the committed offsets.
                    await self._seek_back()
                    continue
                if self.app.consumer_generation_id != generation:
                    # A rebalance completed since the fetch; it ended with a seek to the
                    # committed offsets, so these records are fetched again.
                    continue
                if not self.membership.current():
                    # The group may have dropped this worker (the process stood still, or
                    # the broker was away): not handled, fetched again from the committed
                    # offsets once a heartbeat confirms the membership or the rejoin ends.
                    await self._seek_back()
                    await self.sleep(MEMBERSHIP_RETRY_S)
                    continue
                others = self._handle_batch_topics(records, active)
                if others:
                    await self._deliver(others, generation)
                await self._maybe_commit()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except ending:
            # A stopped consumer, as Faust's own loop ends; and a cancellation: Faust cancels
            # the fetcher at every rebalance and at shutdown, and its fetcher task takes one
            # during a rebalance for a crash to restart from, which at shutdown ended the
            # process with exit 1 (tests/reliability/test_stop_in_rebalance.py). A worker
            # that is stopping ends here quietly; anything else goes on to Faust.
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    def _handle_batch_topics(self, records: Any, active: Any) -> list[tuple[Any, list[Any]]]:
        """Hand the batch topics' new records to the handler in one call; ack them all.

        Returns the records of the other topics, for the per-message path.
        """
        batch: list[tuple[Any, list[Any]]] = []
        taken: list[tuple[Any, list[int]]] = []
        others: list[tuple[Any, list[Any]]] = []
        read_offset, buffered = self._read_offset, self._buffered_partitions
        topics = self.batch_topics
        for tp, recs in records.items():
            if active is not None and tp not in active and tp not in buffered:
                continue  # revoked or paused since the fetch
            if tp.topic not in topics:
                others.append((tp, recs))
                continue
            position = read_offset[tp]
            if position is not None:
                if recs[0].offset < position:  # a redelivery after a seek
                    recs = [r for r in recs if r.offset >= position]
                    if not recs:
                        continue
                if recs[0].offset > position:
                    self._record_gap(tp, position, recs[0].offset - 1)
            batch.append((tp, recs))
            first, last = recs[0].offset, recs[-1].offset
            if last - first == len(recs) - 1:
                taken.append((tp, list(range(first, last + 1))))
            else:
                taken.append((tp, [r.offset for r in recs]))
            read_offset[tp] = recs[-1].offset + 1
        if batch:
            self.batch_handler(batch)
            if not self.membership.current():
                # Handled, but the process may have stood still meanwhile and the records
                # be another member's now: nothing of it may leave the process.
                self.stop_uncommitted(self.membership.lost())
            self._ack_offsets(taken)
            self._mark_inbound(batch)
        return others

    def _caught_up(self) -> bool:
        """True when the fetch just handled read the last record of a backlog.

        The lag is the batch topics' high watermarks (from the latest fetch responses) minus
        the read positions, over the assigned partitions. A lag of ``BACKLOG_RECORDS`` or more
        starts a backlog; a lag of 0 ends it: the worker has read everything there is, and
        committing now rather than at the next tick makes the committed offsets (and the lag
        operators see) current at once, and leaves a crash nothing to replay. A partition no
        fetch has answered for yet has no high watermark: its lag is unknown, so nothing is
        caught up until every one has been answered (an empty partition's is 0).
        """
        # One snapshot of aiokafka's assignment: a rebalance on the consumer thread replaces
        # it whole, where asking partition by partition could meet a partition just revoked.
        subscription = self._thread._ensure_consumer()._subscription.subscription
        assignment = None if subscription is None else subscription.assignment
        if assignment is None:
            return False
        lag, unanswered = 0, False
        read_offset, topics = self._read_offset, self.batch_topics
        for tp in assignment.tps:
            if tp.topic in topics:
                high = assignment.state_value(tp).highwater
                if high is None:
                    unanswered = True
                else:
                    lag += high - (read_offset.get(tp) or 0)
        if lag >= BACKLOG_RECORDS:
            self._backlog = max(self._backlog, lag)
            return False
        return lag == 0 and self._backlog > 0 and not unanswered

    def _mark_inbound(self, batch: list[tuple[Any, list[Any]]]) -> None:
        """Note when each partition last had records handled, as Faust's monitor does for
        every event a stream takes in (``Monitor.on_stream_event_in``).

        Faust's livelock check runs every 2.5 s over every assigned partition; once the
        worker has run for ``stream_processing_timeout`` (5 minutes), a partition whose
        fetched high watermark is past its position and that has no inbound time is logged
        as an ERROR, "Stream has not started processing". Without this, a worker under
        sustained traffic logged that for every partition every 2.5 s from its sixth minute
        on (the soak, docs/reliability.md).
        """
        monitor = self.app.monitor
        if monitor is None:
            return
        inbound, now = monitor.stream_inbound_time, monotonic()
        for tp, _ in batch:
            inbound[tp] = now

    def _ack_offsets(self, taken: list[tuple[Any, list[int]]]) -> None:
        """Acknowledge handled offsets (ascending, per partition) the way ``Consumer.ack``
        does, a partition at a time.

        An offset is acknowledged once (``_acked_index``). Offsets above every one this
        worker acknowledged in the partition (``_acked_high``: the usual case) cannot be in
        the index, so they are added without a lookup each.
        """
        high = self._acked_high
        with ack_lock:
            for tp, offsets in taken:
                committed = self._committed_offset[tp]
                if committed is not None and offsets[0] < committed:
                    offsets = offsets[bisect_left(offsets, committed) :]
                    if not offsets:
                        continue
                index = self._acked_index[tp]
                top = high.get(tp)
                if top is None or offsets[0] > top:
                    fresh = offsets
                else:
                    fresh = [o for o in offsets if o not in index]
                high[tp] = offsets[-1] if top is None else max(top, offsets[-1])
                index.update(fresh)
                self._acked[tp].extend(fresh)
                self._n_acked += len(fresh)

    def _new_offset(self, tp: Any) -> int | None:
        """Faust's next commit offset for ``tp`` (``Consumer._new_offset``), from a
        de-duplicated list of acks, without a Python step per acknowledged offset.

        After a seek back to the committed offset (every rebalance) records are delivered
        again, and those acknowledged before but not yet committed were appended to the
        ack list a second time. Faust's ``_new_offset`` commits only the first run of
        consecutive offsets, which a repeated offset ends: the committed offset then crept
        one record per commit (a false lag of thousands of records for minutes). Faust also
        finds that run with a Python generator step per offset (some 60,000 a second here);
        ``first_run_end`` bisects.
        """
        acked = self._acked[tp]
        if not acked:
            return None
        committed = self._committed_offset[tp]
        unique = sorted(set(acked))
        if committed is not None:
            unique = unique[bisect_left(unique, committed) :]
        gaps = self._gap[tp]
        if unique and gaps:
            # As Faust: the gaps up to the highest acknowledged offset count as acknowledged.
            max_offset = unique[-1]
            ranges = sorted(gaps.overlap(0, max_offset), key=lambda r: r.begin)
            if ranges:
                added: list[int] = []
                for entry in ranges:
                    added.extend(range(entry.begin, entry.end))
                gaps.chop(0, max(added[-1], max_offset + 1))
                unique = sorted(set(unique).union(added))
        if not unique or (committed and unique[0] - committed > 1):
            acked[:] = unique
            self._acked_index[tp] = set(unique)
            return None
        end = first_run_end(unique)
        acked[:] = unique[end:]
        self._acked_index[tp] = set(acked)
        return unique[end - 1] + 1

    def _record_gap(self, tp: Any, first: int, last: int) -> None:
        """Offsets ``first..last`` will never arrive: count them as acknowledged for commits."""
        committed = self._committed_offset[tp]
        if committed is not None:
            first = max(first, committed)
        if first <= last:
            gaps = self._gap[tp]
            gaps.addi(first, last + 1)
            gaps.merge_overlaps()

    async def _deliver(self, others: list[tuple[Any, list[Any]]], generation: int) -> None:
        """The usual per-message path, for topics other than the batch topics."""
        callback, read_offset = self.callback, self._read_offset
        for tp, recs in others:
            for record in recs:
                if not self.flow_active or self.app.consumer_generation_id != generation:
                    return
                position = read_offset[tp]
                if position is not None and record.offset < position:
                    continue
                message = self._to_message(tp, record)
                await self.wait_first(callback(message), self.suspend_flow.wait())
                read_offset[tp] = record.offset

    async def _maybe_commit(self) -> None:
        """Commit between fetches when the fetch just handled ended a backlog
        (``_caught_up``), or after ``broker_commit_every`` acknowledgements (Faust's
        setting; the worker leaves commits to the timer otherwise)."""
        if self._caught_up():
            # A commit in flight (Faust's timer) took its offsets before this fetch's acks,
            # and Faust's ``commit`` only waits for it: wait, then commit these.
            while await self.maybe_wait_for_commit_to_finish():
                pass
            await self.commit()
            log.info("caught up after a backlog of %d records; offsets committed", self._backlog)
            self._backlog = 0
            return
        every = self._commit_every
        if every is not None and self._n_acked >= every:
            self._n_acked = 0
            await self.commit()

    async def _seek_back(self) -> None:
        try:
            await self.perform_seek()
        except Exception as exc:
            self.log.warning("seek to committed offsets after a rebalance failed: %r", exc)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with the fast-path consumer; ``hooks`` is set by ``attach``."""

    Consumer = BatchConsumer
    hooks: WorkerHooks | None = None
