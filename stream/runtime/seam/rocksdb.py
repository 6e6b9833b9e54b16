"""A Faust RocksDB store's databases, one per partition, read and written directly.

Faust's store decodes every key and value and finds a key's partition from the current event;
the worker knows the partition and keeps raw bytes, so it reads and writes the partition's
database itself (one write batch per partition per fetch). tests/stream/runtime/test_seam.py
checks that what is written here is what Faust's own store reads, and the other way round.
"""

from __future__ import annotations

from typing import Any

from faust.stores.rocksdb import Store as RocksDBStore

__all__ = ["RocksDBStore", "all_partitions_get", "partition_databases", "partition_db"]


def partition_db(store: RocksDBStore, partition: int) -> Any:
    """The database of ``partition`` (opened if needed), as Faust's ``_set`` writes to it."""
    return store._db_for_partition(partition)


def all_partitions_get(store: RocksDBStore, key: bytes) -> bytes | None:
    """``key``'s raw value from whichever partition's database holds it (Faust's ``_get``)."""
    value: bytes | None = store._get(key)
    return value


def partition_databases(store: RocksDBStore) -> list[Any]:
    """The databases of the partitions open now."""
    return list(store._dbs.values())
