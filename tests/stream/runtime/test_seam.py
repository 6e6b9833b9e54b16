"""The runtime seam's producer, fetch, RocksDB and table parts against the libraries' own
methods (stream/runtime/seam/producer.py, fetch.py, rocksdb.py; stream/runtime/faustparts.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from faust.tables.base import Collection
from faust.tables.manager import TableManager

from stream.runtime.faustparts import (
    MEMTABLE_BLOOM_RATIO,
    OPEN_AHEAD_AFTER_S,
    PromptTableManager,
    StateStore,
    StateTable,
    rocksdb_options,
)
from stream.runtime.seam import fetch
from stream.runtime.seam.producer import Record, append_records
from stream.runtime.seam.rocksdb import (
    RocksDBStore,
    all_partitions_get,
    partition_databases,
    partition_db,
)

TP = TopicPartition("funnel.lead_states-changelog", 3)
TIMESTAMP_MS = 1_795_791_845_250
NOWHERE = "127.0.0.1:9"  # the producers are never started: nothing is sent


def _records(n: int) -> list[Record]:
    return [
        (f"lead-{i}".encode(), b'{"stage":"mql"}' * (i % 5 + 1), [("h", b"x")] if i % 3 else [])
        for i in range(n)
    ]


@asynccontextmanager
async def _unstarted_producer(**options: Any) -> AsyncIterator[Any]:
    producer = AIOKafkaProducer(bootstrap_servers=NOWHERE, **options)
    try:
        yield producer
    finally:
        await producer.stop()


async def _added_by_aiokafka(records: list[Record], **options: Any) -> Any:
    """aiokafka's own ``add_message`` for each record; the partition's one waiting batch."""
    async with _unstarted_producer(**options) as producer:
        for key, value, headers in records:
            await producer._message_accumulator.add_message(
                TP, key, value, timeout=1.0, timestamp_ms=TIMESTAMP_MS, headers=headers
            )
        [batch] = producer._message_accumulator._batches[TP]
        return batch


async def test_appended_records_make_the_batch_add_message_makes() -> None:
    records = _records(60)
    async with _unstarted_producer() as producer:
        first = append_records(producer, TP, records[:25], TIMESTAMP_MS)
        again = append_records(producer, TP, records[25:], TIMESTAMP_MS)  # joins the last batch
        [ours] = producer._message_accumulator._batches[TP]
    assert [b for b, _ in first] == [ours] and again == []
    expected = await _added_by_aiokafka(records)
    assert bytes(ours.get_data_buffer()) == bytes(expected.get_data_buffer())


async def test_a_full_batch_is_closed_and_the_rest_go_to_a_new_one() -> None:
    """Where ``add_message`` would wait for the sender to take a full batch, the seam starts
    the next one; each batch holds what aiokafka's own would, and no more fitted."""
    records, options = _records(200), {"max_batch_size": 1024}
    async with _unstarted_producer(**options) as producer:
        started = append_records(producer, TP, records, TIMESTAMP_MS)
        batches = list(producer._message_accumulator._batches[TP])
    assert len(batches) > 2 and [b for b, _ in started] == batches
    done = 0
    for batch in batches:
        n = batch.record_count
        expected = await _added_by_aiokafka(records[done : done + n], **options)
        if done + n < len(records):
            key, value, headers = records[done + n]
            assert expected.append(key, value, TIMESTAMP_MS, headers=headers) is None  # full
        assert bytes(batch.get_data_buffer()) == bytes(expected.get_data_buffer())
        done += n
    assert done == len(records)


def _state_table(tmp_path: Path) -> StateTable:
    """A state table of 4 partitions on RocksDB in ``tmp_path``, as the worker makes them."""
    app = faust.App("seam-test", store="rocksdb://", datadir=str(tmp_path), autodiscover=False)
    return StateTable(app, name="states", key_type=str, partitions=4, options=rocksdb_options())


def test_rocksdb_reads_and_writes_are_the_stores_own(tmp_path: Path) -> None:
    table = _state_table(tmp_path)
    store = table.data
    assert isinstance(store, RocksDBStore)
    partition_db(store, 1).put(b"lead-1", b"one")
    partition_db(store, 2).put(b"lead-2", b"two")
    assert partition_db(store, 1) is store._db_for_partition(1)
    for key in (b"lead-1", b"lead-2", b"lead-3"):
        assert all_partitions_get(store, key) == store._get(key)
    assert all_partitions_get(store, b"lead-2") == b"two"
    assert {id(db) for db in partition_databases(store)} == {id(db) for db in store._dbs.values()}
    assert len(partition_databases(store)) == 2
    for db in partition_databases(store):
        db.close()


def test_state_databases_filter_their_memtables_and_keep_fausts_settings(tmp_path: Path) -> None:
    """What RocksDB itself writes down for a state table's database (its OPTIONS file)."""
    table = _state_table(tmp_path)
    store = table.data
    assert isinstance(store, RocksDBStore)
    db = partition_db(store, 0)
    written = "".join(path.read_text() for path in tmp_path.rglob("OPTIONS-*"))
    db.close()
    settings = dict(
        line.strip().split("=", 1) for line in written.splitlines() if "=" in line.strip()
    )
    assert settings["memtable_whole_key_filtering"] == "true"
    assert float(settings["memtable_prefix_bloom_size_ratio"]) == MEMTABLE_BLOOM_RATIO
    assert int(settings["write_buffer_size"]) == rocksdb_options()["write_buffer_size"]
    assert "bloomfilter" in settings["filter_policy"]  # Faust's filter of the files on disk


def test_state_tables_store_bytes_as_faust_stores_bytes() -> None:
    """Keys and values are kept as the bytes given, whatever their declared type."""
    faust_raw = Collection._serializer_from_type(None, bytes)  # type: ignore[arg-type]
    assert faust_raw == "raw"
    for declared in (str, bytes, None):
        assert StateTable._serializer_from_type(None, declared) == faust_raw  # type: ignore[arg-type]


def _manager(calls: list[str]) -> Any:
    async def sleep(seconds: float) -> None:
        calls.append(f"sleep {seconds}")

    async def update_channels() -> None:
        calls.append("channels")

    async def start_recovery() -> None:
        calls.append("recovery")

    return SimpleNamespace(
        should_stop=False,
        sleep=sleep,
        _update_channels=update_channels,
        recovery=SimpleNamespace(start=start_recovery),
    )


async def test_the_table_manager_starts_as_fausts_without_its_pause() -> None:
    fausts: list[str] = []
    ours: list[str] = []
    await TableManager.on_start(_manager(fausts))
    await PromptTableManager.on_start(_manager(ours))
    assert fausts == ["sleep 1.0", *ours]
    assert ours == ["channels", "recovery"]


def _record_batches(offsets: list[int], per_batch: int) -> bytes:
    """Record batches holding ``offsets`` (ascending), ``per_batch`` records each; some
    records without a key or value, some with headers."""
    buffer = bytearray()
    for start in range(0, len(offsets), per_batch):
        chunk = offsets[start : start + per_batch]
        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=0,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=1 << 20,
        )
        for offset in chunk:
            builder.append(
                offset - chunk[0],
                timestamp=TIMESTAMP_MS + offset,
                key=None if offset % 7 == 0 else f"v-{offset}".encode(),
                value=None if offset % 11 == 0 else b'{"type":"visit"}' * (offset % 4),
                headers=[("h", str(offset).encode())] if offset % 3 == 0 else [],
            )
        raw = builder.build()
        raw[0:8] = chunk[0].to_bytes(8, "big", signed=True)  # the batch's base offset
        buffer += raw
    return bytes(buffer)


_CONSUMER_RECORD_FIELDS = (
    "topic",
    "partition",
    "offset",
    "timestamp",
    "timestamp_type",
    "key",
    "value",
    "checksum",
    "serialized_key_size",
    "serialized_value_size",
    "headers",
)


@pytest.mark.parametrize("max_records", [None, 1, 5, 17])
@pytest.mark.parametrize("fetch_offset", [0, 3, 7])  # within the first batch, as fetched
def test_fetched_records_are_aiokafkas_records(max_records: int | None, fetch_offset: int) -> None:
    """``FunnelPartitionRecords`` yields the records aiokafka's ``PartitionRecords`` yields
    (as parsed; ``located`` adds topic and partition), field by field, and leaves the fetch
    position where it does, also when ``getall`` stops after ``max_records`` and is called
    again."""
    offsets = [o for o in range(60) if o % 13 != 5]  # holes, as compaction leaves
    data = _record_batches(offsets, per_batch=9)
    tp = TopicPartition("funnel.visits", 3)
    fetch.use_for([tp.topic])

    def drain(records_class: Any) -> tuple[list[Any], list[int]]:
        records = records_class(tp, MemoryRecords(data), [], fetch_offset, None, None, True, 0)
        assignment = SimpleNamespace(active=True, state_value=lambda _: state)
        state = SimpleNamespace(paused=False, position=fetch_offset)
        state.consumed_to = lambda offset: setattr(state, "position", offset)
        result = aiokafka_fetcher.FetchResult(
            tp, assignment=assignment, partition_records=records, backoff=0
        )
        got: list[Any] = []
        positions: list[int] = []
        while result.has_more():
            got += result.getall(max_records)
            positions.append(state.position)
        return got, positions

    expected, expected_positions = drain(aiokafka_fetcher.PartitionRecords)
    fetched, positions = drain(fetch.FunnelPartitionRecords)
    assert positions == expected_positions
    assert [r.offset for r in expected] == [o for o in offsets if o >= fetch_offset]
    assert len(fetched) == len(expected)
    for parsed, theirs in zip(fetched, expected, strict=True):
        assert not isinstance(parsed, ConsumerRecord)
        mine = fetch.located(parsed, tp)
        assert isinstance(mine, fetch.FetchedRecord)
        for field in _CONSUMER_RECORD_FIELDS:
            assert getattr(mine, field) == getattr(theirs, field), field


def test_other_topics_keep_aiokafkas_consumer_records() -> None:
    tp = TopicPartition("funnel.lead_states-changelog", 0)
    data = _record_batches(list(range(5)), per_batch=5)
    records = fetch.FunnelPartitionRecords(tp, MemoryRecords(data), [], 0, None, None, True, 0)
    assert all(isinstance(r, ConsumerRecord) for r in records)


def test_a_read_committed_consumer_keeps_aiokafkas_consumer_records() -> None:
    """Transactions' aborted records are aiokafka's to skip: that path stays its own."""
    tp = TopicPartition("funnel.visits", 0)
    fetch.use_for([tp.topic])
    data = _record_batches(list(range(5)), per_batch=5)
    records = list(
        fetch.FunnelPartitionRecords(
            tp, MemoryRecords(data), [], 0, None, None, True, aiokafka_fetcher.READ_COMMITTED
        )
    )
    assert [r.offset for r in records] == list(range(5))
    assert all(isinstance(r, ConsumerRecord) for r in records)


async def test_state_stores_open_their_databases_ahead_and_keep_only_the_assigned(
    tmp_path: Path,
) -> None:
    """Opened while the first join waits; the assignment keeps its own partitions' databases
    and drops the others before anything reads them; nothing is opened ahead after it."""
    table = _state_table(tmp_path)
    store = table.data
    assert isinstance(store, StateStore)
    store.open_ahead()
    await asyncio.sleep(OPEN_AHEAD_AFTER_S + 0.5)
    assert sorted(store._dbs) == [0, 1, 2, 3]
    [topic] = table.changelog_topic.topics
    assigned = {TopicPartition(topic, 1), TopicPartition(topic, 3), TopicPartition("input", 0)}
    ahead = store._dbs[1]
    await store.on_rebalance(assigned, set(), assigned)
    assert sorted(store._dbs) == [1, 3] and store._dbs[1] is ahead
    store.open_ahead()  # a later join: nothing more is opened
    await asyncio.sleep(OPEN_AHEAD_AFTER_S + 0.2)
    assert sorted(store._dbs) == [1, 3]
    for db in partition_databases(store):
        db.close()


def test_state_stores_are_built_as_faust_builds_a_tables_store(tmp_path: Path) -> None:
    """The same arguments as Faust's own ``_new_store_by_url``; only the class differs."""
    table = _state_table(tmp_path)
    ours = table.data
    fausts = Collection._new_store_by_url(table, "rocksdb://")
    assert type(ours) is StateStore and type(fausts) is RocksDBStore
    for name in ("url", "table_name", "key_type", "value_type", "key_serializer", "options"):
        assert getattr(ours, name) == getattr(fausts, name), name
    assert ours.value_serializer == fausts.value_serializer == "raw"
    assert ours.table is fausts.table is table and ours.app is fausts.app is table.app
