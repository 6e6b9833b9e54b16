"""Faust pieces the worker configures: the app's settings, its state tables, their RocksDB
store and settings, and a table manager without Faust's start-up pause."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Set
from typing import Any

import faust
from faust.stores import by_url as store_class_by_url
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.manager import TableManager

from stream.config.settings import Settings
from stream.kafka.security import faust_credentials
from stream.runtime.leadsweb import advertised_url
from stream.runtime.seam import transport

log = logging.getLogger(__name__)

# A member joining a group waits about half the session timeout, twice after kill -9: short,
# so a restart is quick (docs/performance.md, 4.). Heartbeats come from Faust's consumer
# thread, not the main loop. Apache Kafka may set a higher floor; ``funnel worker`` takes it
# (stream.cli.run.session_timeout). The rebalance timeout follows the session timeout.
SESSION_TIMEOUT_S = 2.0
# Faust waits this long after an assignment before recovering tables, in case another
# rebalance follows; the default (3 s) only delays start-up. A rebalance during recovery
# interrupts it anyway (Faust restarts recovery for the new generation).
RECOVERY_DELAY_S = 0.0
# At most this many records per fetch handed to the worker, and bytes fetched per partition:
# they bound the memory of a batch (the fetched bytes, the decoded records and events);
# docs/performance.md (12.) has the rate and memory of the sizes tried.
MAX_RECORDS_PER_FETCH = 20_000
FETCH_BYTES_PER_PARTITION = 2 << 20
# How long a state store waits, once the first join has begun, before it opens its databases
# (StateStore): the consumer's JoinGroup requests go first.
OPEN_AHEAD_AFTER_S = 0.1
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


class StateStore(RocksDBStore):
    """Faust's RocksDB store of a state table, with its databases opened while the group join
    waits.

    Faust opens a partition's database when the partition is assigned: 16 databases for 8
    partitions, 0.1–0.4 s in all, after the join, at every start and every restart. The
    embedded broker answers a ``JoinGroup`` a second after it is sent at the earliest (a
    broker's own wait), with the main thread idle. So when the first join begins
    (``PromptTableManager``), the store opens each partition's database, one per turn of the
    event loop, until the group's first assignment arrives; the assignment then finds its
    databases open and drops those of partitions it did not assign before anything reads
    them (the rebuild reads every open database). A database that cannot be opened ahead (a
    lock held by another process on the same directory, say) is left to the assignment,
    which opens it as before, with Faust's retries and errors (docs/performance.md, 40.).
    """

    _opening_ahead = False  # until the first assignment
    _opened_ahead = False  # once, on the first join

    def open_ahead(self) -> None:
        """Open each partition's database, one per turn of the event loop, until the first
        assignment (called when the first join begins; later calls do nothing)."""
        if not self._opened_ahead:
            self._opened_ahead = self._opening_ahead = True
            self.add_future(self._open_ahead())

    async def _open_ahead(self) -> None:
        # An open holds the GIL, which the consumer thread needs to send its JoinGroup
        # requests (two round trips: the broker first assigns the member id); the broker's
        # wait starts at the second.
        await asyncio.sleep(OPEN_AHEAD_AFTER_S)
        partitions = self.table.partitions or self.app.conf.topic_partitions
        for partition in range(partitions):
            await asyncio.sleep(0)
            if not self._opening_ahead:
                return
            try:
                self._db_for_partition(partition)
            except Exception as exc:  # rocksdict raises plain exceptions; Faust catches these too
                log.info(
                    "state store %s: partition %s left to the assignment: %r",
                    self.table.name,
                    partition,
                    exc,
                )
                return

    async def on_rebalance(
        self,
        assigned: Set[Any],
        revoked: Set[Any],
        newly_assigned: Set[Any],
        generation_id: int = 0,
    ) -> None:
        self._opening_ahead, self._opened_ahead = False, True
        own = self.table.changelog_topic.topics
        standby = self.app.assignor.assigned_standbys()
        kept = {tp.partition for tp in assigned if tp.topic in own and tp not in standby}
        for partition in [p for p in self._dbs if p not in kept]:
            del self._dbs[partition]  # opened ahead, not assigned: closed when dropped
        await super().on_rebalance(
            assigned,  # type: ignore[arg-type]
            revoked,  # type: ignore[arg-type]
            newly_assigned,  # type: ignore[arg-type]
            generation_id,
        )

    def revoke_partitions(self, table: Any, tps: Set[Any]) -> None:
        # Faust's runs a full garbage collection after dropping the revoked databases, even
        # when none is this table's (every first assignment): 10–70 ms each time.
        own = table.changelog_topic.topics
        if any(tp.topic in own for tp in tps):
            super().revoke_partitions(table, tps)  # type: ignore[arg-type]


class PromptTableManager(TableManager):
    """Faust's table manager without its start-up pause, which has the state stores open their
    databases while the first join waits (``StateStore``).

    Faust sleeps a second before registering tables, in case an app defines some late; the
    worker defines both of its tables before the app starts, so that second only delays every
    start and every restart.
    """

    def on_partitions_revoked(self, revoked: Set[Any]) -> None:
        super().on_partitions_revoked(revoked)  # type: ignore[arg-type]
        # Called just before the consumer sends its JoinGroup: the stores open their
        # databases while the broker makes it wait (on the first join only).
        for table in self.values():
            store = table.data
            if isinstance(store, StateStore):
                store.open_ahead()

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
        store_class = store_class_by_url(url)
        if store_class is RocksDBStore:
            store_class = StateStore
        store = store_class(
            url,
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )
        if isinstance(store, RocksDBStore):
            # The table's options, as Faust's store read them (it keeps the dict it was given).
            store.rocksdb_options = FilteredRocksDBOptions(
                **(store.options or {}), use_rocksdict=store.use_rocksdict
            )
        return store


def faust_app(settings: Settings, session_timeout_s: float) -> faust.App:
    """The worker's ``faust.App``, on its own transport (``funnel://``), not started."""
    s = settings
    return faust.App(
        s.app_id,
        # The worker's own transport (stream.runtime.seam.transport): the fast path.
        broker=transport.broker_url(s.bootstrap_servers),
        broker_credentials=faust_credentials(s.kafka),
        store="rocksdb://" if s.store == "rocksdb" else "memory://",
        datadir=str(s.data_dir),
        web_port=s.web_port,
        web_bind=s.web_bind,
        web_host=s.web_bind,
        # What the other members call for /leads?scope=group (sent in the group metadata).
        canonical_url=advertised_url(s.web_bind, s.web_port),
        topic_partitions=s.partitions,
        topic_replication_factor=1,
        topic_disable_leader=True,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=session_timeout_s,
        broker_session_timeout=session_timeout_s,
        stream_recovery_delay=RECOVERY_DELAY_S,
        broker_heartbeat_interval=session_timeout_s / 4,
        broker_commit_interval=1.0,
        # Changelog writes are many and small: batch them instead of one request each.
        producer_linger=0.02,
        producer_max_batch_size=1 << 20,
        broker_max_poll_records=MAX_RECORDS_PER_FETCH,
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
        # Offsets are committed by Faust's timer (every second) only: a commit every N
        # acknowledgements would run inside the fetch loop and hold records back.
        broker_commit_every=1 << 62,
        autodiscover=False,
        TableManager=PromptTableManager,
    )
