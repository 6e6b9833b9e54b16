"""Faust pieces the worker configures: its state tables, their RocksDB settings, and a table
manager without Faust's start-up pause."""

from __future__ import annotations

from typing import Any

import faust
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.manager import TableManager

# Bits of the memtable's bloom filter, as a share of the write buffer (4 MiB: 80 KiB, some
# 16 bits per visitor state of ~100 bytes).
MEMTABLE_BLOOM_RATIO = 0.02


def rocksdb_options() -> dict[str, int]:
    """RocksDB settings of each partition's state store (a new dict: Faust consumes it).

    Faust's defaults are sized for a server with one big store: 64 MiB write buffers (up to
    three) and a 2 GiB block cache, per database. The worker opens one database per
    partition per table (16 with 8 partitions), and a state is a few hundred bytes, so those
    buffers never filled and held every state in memory. Small buffers flush to disk early.
    """
    return {
        "write_buffer_size": 4 << 20,
        "max_write_buffer_number": 2,
        "block_cache_size": 4 << 20,
        "block_cache_compressed_size": 0,
    }


class FilteredRocksDBOptions(RocksDBOptions):
    """Faust's RocksDB settings plus a bloom filter over each memtable's keys.

    Most reads of the worker miss: a visitor's first visit looks for a state it does not
    have yet. Faust filters the files on disk only; a miss in the memtable searched its
    skip list, about 1.9 µs against 0.45 µs with the filter (60,000 states of 60 bytes,
    rocksdict), and the memtable is where the states of the current traffic are.
    """

    def as_options(self) -> Any:
        options = super().as_options()
        if self.use_rocksdict:
            options.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO)
            options.set_memtable_whole_key_filtering(True)
        return options


class PromptTableManager(TableManager):
    """Faust's table manager without its start-up pause.

    Faust sleeps a second before registering tables, in case an app defines some late; the
    worker defines both of its tables before the app starts, so that second only delays every
    start and every restart.
    """

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class StateTable(faust.Table[str, bytes]):
    """A table of states the core encodes itself: values are stored as the bytes given.

    Faust picks a table's serializer from its value type and would decode the core's JSON
    bytes into lists; the core wants its own bytes back.
    """

    def _serializer_from_type(self, typ: Any) -> str:
        return "raw"

    def _new_store_by_url(self, url: Any) -> Any:
        store = super()._new_store_by_url(url)
        if isinstance(store, RocksDBStore):
            # The table's options, as Faust's store read them (it keeps the dict it was given).
            store.rocksdb_options = FilteredRocksDBOptions(
                **(store.options or {}), use_rocksdict=store.use_rocksdict
            )
        return store
