"""The runtime seam's producer, RocksDB and table parts against the libraries' own methods
(stream/runtime/seam/producer.py, rocksdb.py; stream/runtime/faustparts.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka import AIOKafkaProducer, TopicPartition
from faust.tables.base import Collection
from faust.tables.manager import TableManager

from stream.runtime.faustparts import PromptTableManager, StateTable, rocksdb_options
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


def test_rocksdb_reads_and_writes_are_the_stores_own(tmp_path: Path) -> None:
    app = faust.App("seam-test", store="rocksdb://", datadir=str(tmp_path), autodiscover=False)
    table = StateTable(app, name="states", key_type=str, partitions=4, options=rocksdb_options())
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
