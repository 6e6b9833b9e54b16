"""State tables written once per key per batch, with the changelog sent as whole record batches.

The worker applies a fetch of records to the core, whose stores are ``WriteBackStore`` wrappers
around the Faust tables: reads see the batch's own writes; ``flush()`` writes each changed key
once into the local store (one RocksDB write batch per partition) and appends the changed keys
to the table's changelog partition, the key's own (the source partition of the record that
changed it), as whole Kafka record batches.

Faust's own path does the same per key: ``Table.__setitem__`` wraps every write in a
``FutureMessage``, sends it with its own produce call and writes the changelog offset back into
RocksDB from a callback per record, which made up some 40 % of the worker's time. What Faust
relies on is kept: the changelog record of every write is in the producer's queue before the
batch's offsets are acknowledged (Faust flushes the producer before it commits them), and the
highest changelog offset written is kept in each partition's store (``persisted_offset``), from
which Faust resumes recovery (tests/stream/runtime/test_exactness.py restarts a killed worker on an
empty state directory, from the changelog alone; also the kill and rebalance tests).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from itertools import repeat
from typing import Any

import rocksdict
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from stream.errors import StateTooLarge
from stream.runtime.seam import producer as kafka
from stream.runtime.seam.producer import Record
from stream.runtime.seam.rocksdb import (
    RocksDBStore,
    all_partitions_get,
    partition_databases,
    partition_db,
)

log = logging.getLogger(__name__)

# Batches queued per changelog partition before the worker waits for the producer.
MAX_QUEUED_BATCHES = 2


class WriteBackStore:
    """A ``KeyValueStore`` over a Faust table (raw ``str`` keys, ``bytes`` values) that buffers
    writes until ``flush()``.

    ``partition`` is the source partition of the record being applied: reads look in that
    partition's store only, and writes go to it. Outside a batch (timers) it is ``None`` and a
    read searches every partition this worker holds.
    """

    def __init__(self, table: Any, on_failure: Callable[[Exception], None]) -> None:
        # Keys are stored as their UTF-8 bytes: what Faust's "raw" serializer writes.
        assert table.key_serializer == "raw", table.key_serializer
        self._table = table
        # A state record must fit one produce request: the producer does not check the
        # records appended to its queue here, and a broker refusing one would stop the
        # worker for good (every restart writes the same state again). The core's bounds
        # (stream.core.bounds) keep every state far below: this catches a bug.
        self._max_request_size: int = table.app.conf.producer_max_request_size
        # Writes waiting for ``flush()``, per partition (a key belongs to one partition).
        self._pending: dict[int, dict[str, bytes]] = {}
        self._pending_here: dict[str, bytes] = {}  # those of ``partition``
        self._partition: int | None = None
        self._db: Any = None  # the RocksDB database of ``partition``, once looked up
        # When a changelog batch is stored, its last offset is kept in the partition's
        # store: Faust resumes the changelog from there when it recovers the table.
        self._changelog = TopicWriter(
            table.app,
            table.changelog_topic.get_topic_name,
            on_failure,
            on_stored=lambda tp, offset: table.data.set_persisted_offset(tp, offset),
        )

    @property
    def partition(self) -> int | None:
        """The source partition of the records being applied (None between batches)."""
        return self._partition

    @partition.setter
    def partition(self, partition: int | None) -> None:
        # The database is looked up again for every batch: a rebalance between batches
        # can close it.
        self._partition, self._db = partition, None
        if partition is not None:
            self._pending_here = self._pending.setdefault(partition, {})

    def get(self, key: str) -> bytes | None:
        """The key's value, as written in this batch or else as stored."""
        pending = self._pending_here.get(key) if self._partition is not None else None
        if pending is not None:
            return pending
        db = self._db
        if db is not None:
            value: bytes | None = db.get(key.encode())
            return value
        store = self._table.data
        if isinstance(store, RocksDBStore):
            if self._partition is not None:
                self._db = db = partition_db(store, self._partition)
                value = db.get(key.encode())
            else:
                value = all_partitions_get(store, key.encode())
        else:
            value = store.data.get(key)  # the memory store keeps decoded keys
        return value

    def __setitem__(self, key: str, value: bytes) -> None:
        assert self._partition is not None, "state written outside a batch"
        self._pending_here[key] = value

    def items(self) -> Iterable[tuple[str | bytes, bytes]]:
        """Every stored item of the partitions held (only called between batches).

        RocksDB databases are read directly, raw keys and values, without Faust's
        per-item decoding: a rebuild after a restart reads every state twice.
        """
        store = self._table.data
        if not isinstance(store, RocksDBStore):
            items: Iterable[tuple[str | bytes, bytes]] = self._table.items()
            return items
        return self._rocksdb_items(store)

    @staticmethod
    def _rocksdb_items(store: RocksDBStore) -> Iterator[tuple[str | bytes, bytes]]:
        skip = store.offset_key
        for db in partition_databases(store):
            for key, value in db.items():
                if key != skip:
                    yield key, value

    def flush(self) -> None:
        """Write every key changed in this batch to the store and the changelog."""
        store = self._table.data
        for partition, pending in self._pending.items():
            if not pending:
                continue
            self._check_sizes(pending)
            keys = [key.encode() for key in pending]
            values = list(pending.values())
            if isinstance(store, RocksDBStore):
                batch = rocksdict.WriteBatch(raw_mode=True)
                # One put per key, looped in C (map drained by a deque that keeps nothing).
                deque(map(batch.put, keys, values), maxlen=0)
                partition_db(store, partition).write(batch)
            else:
                store.data.update(pending)
            self._changelog.send(partition, zip(keys, values, repeat(_NO_HEADERS)))
        self._pending.clear()
        self._pending_here = {}

    async def wait_for_room(self) -> None:
        """Wait until the producer has taken most of the changelog queued so far."""
        await self._changelog.wait_for_room()

    def _check_sizes(self, pending: dict[str, bytes]) -> None:
        """Refuse a state record larger than a produce request, before it is stored or sent:
        the worker then stops before the batch is committed (``Worker.handle_records``).

        Named by its table and key length only: keys are identifiers of people's visits.
        """
        limit = self._max_request_size
        # Keys are at most 128 characters (512 bytes): the common case is checked in C.
        if max(map(len, pending.values())) < limit // 2:
            return
        for key, value in pending.items():
            raw_key = key.encode()
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(raw_key, value, _NO_HEADERS)
            if size > limit:
                raise StateTooLarge(
                    f"a state of table {self._table.name} (key of {len(raw_key)} bytes) "
                    f"encodes to {size} bytes, more than the producer's max_request_size "
                    f"of {limit}: not written"
                )


_NO_HEADERS: list[tuple[str, bytes]] = []  # shared by every changelog record: never changed


class TopicWriter:
    """Appends records to a topic's partitions as whole record batches, without waiting.

    The batches go into the producer's queue at once (aiokafka's accumulator, in order per
    partition); the producer sends them within its linger time, and Faust's commit waits for
    them (``Producer.flush``), so they are stored before the offsets of the records that
    caused them are committed. ``on_stored(tp, last_offset)`` is called when a batch is
    stored; a batch the broker refuses for good calls ``on_failure`` (the worker then stops
    before committing anything more).
    """

    def __init__(
        self,
        app: Any,
        topic: Callable[[], str],
        on_failure: Callable[[Exception], None],
        on_stored: Callable[[TopicPartition, int], None] | None = None,
    ) -> None:
        self._app = app
        self._topic = topic
        self._on_failure = on_failure
        self._on_stored = on_stored

    def send(self, partition: int, records: Iterable[Record]) -> None:
        """Queue ``records`` for ``partition`` of the topic."""
        tp = TopicPartition(self._topic(), partition)
        # One timestamp for the records of a call (aiokafka's builder would read the clock
        # for each).
        timestamp = int(time.time() * 1000)
        started = kafka.append_records(kafka.kafka_producer(self._app), tp, records, timestamp)
        for batch, builder in started:
            batch.future.add_done_callback(partial(self._sent, tp, builder))

    async def wait_for_room(self, limit: int = MAX_QUEUED_BATCHES) -> None:
        """Wait while any partition of the topic has more than ``limit`` batches queued.

        The producer sends one request at a time per broker; a worker that applies events
        faster than the broker takes them would otherwise queue batches without bound. The
        consumer fast path calls this before it handles the next fetch.
        """
        producer = kafka.kafka_producer(self._app)
        for waiting in kafka.queued_batches(producer, self._topic()):
            while len(waiting) > limit:
                await waiting[0].wait_drain()

    def _sent(self, tp: TopicPartition, builder: Any, future: Any) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.error("record batch refused topic=%s partition=%s: %r", *tp, exc)
            self._on_failure(exc)
            return
        if self._on_stored is not None:
            self._on_stored(tp, future.result().offset + builder.record_count() - 1)
