"""What moving records to their home partition costs (events.md, "Partitioning").

Two figures:

- **On correct input** (every record on its key's home partition, as the other phases'
  input): the worker only checks each key. The check (``split_off_home``, the worker's own
  function) is timed over the phase's input in fetch-sized slices: nanoseconds per record, and
  that time as a share of the worker's time per record in the same run.
- **With 100 % misrouted input**: the same generated input, every keyed record produced to the
  partition after its home partition, read by a fresh worker from spawn until every record is
  consumed at home (each is moved: one write and one read more).
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

from aiokafka import AIOKafkaProducer

from bench.context import Context, Results
from bench.kafka import PARTITIONS, create_topics, end_offsets, generated
from bench.procs import ChildFailed, worker_child
from bench.track import wait_caught_up, wait_healthy
from stream.config.topics import TopicNames
from stream.kafka.partitioner import home_partition
from stream.runtime.reroute import split_off_home

log = logging.getLogger(__name__)

PREFIX = "bench-mr."
_APP = "bench-worker-misrouted"
_FETCH = 20_000  # records per slice, as the worker's fetches (MAX_RECORDS_PER_FETCH)
_READY_TIMEOUT_S = 180.0


class _Record(NamedTuple):
    key: bytes | None


def home_check_ns(ctx: Context, names: TopicNames) -> float:
    """Nanoseconds per record of the home check on records all at home (the common case)."""
    by_partition: dict[int, list[_Record]] = {p: [] for p in range(PARTITIONS)}
    for m in generated(names, count=ctx.events, seed=ctx.seed):
        p = 0 if m.key is None else home_partition(m.key, PARTITIONS)
        by_partition[p].append(_Record(m.key))
    slices = [
        (p, records[i : i + _FETCH])
        for p, records in by_partition.items()
        for i in range(0, len(records), _FETCH)
    ]
    total = sum(len(s) for _, s in slices)
    best = float("inf")
    for _ in range(5):  # the best of five passes: the machine's noise only adds
        started = time.perf_counter_ns()
        for p, records in slices:
            split_off_home(records, p, PARTITIONS)
        best = min(best, (time.perf_counter_ns() - started) / total)
    return best


async def produce_misrouted(ctx: Context, names: TopicNames) -> tuple[int, int]:
    """The generated input, each keyed record on the partition after its home partition;
    returns how many records were sent, and how many of them had a key (all moved)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=ctx.bootstrap, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    sent = keyed = 0
    try:
        pending = []
        for m in generated(names, count=ctx.events, seed=ctx.seed):
            p = 0 if m.key is None else (home_partition(m.key, PARTITIONS) + 1) % PARTITIONS
            keyed += m.key is not None
            pending.append(await producer.send(m.topic, m.value, key=m.key, partition=p))
            if len(pending) >= 10_000:
                for future in pending:
                    await future
                sent += len(pending)
                pending.clear()
        for future in pending:
            await future
        sent += len(pending)
    finally:
        await producer.stop()
    return sent, keyed


async def run_reroute(ctx: Context, worker_events_per_s: float | None) -> Results:
    """The home check's cost on correct input, and a worker over 100 % misrouted input."""
    names = TopicNames.from_prefix(PREFIX)
    check_ns = home_check_ns(ctx, names)
    log.info("reroute: home check %.0f ns per record", check_ns)
    await create_topics(ctx.bootstrap, names)
    sent, keyed = await produce_misrouted(ctx, names)
    ends = await end_offsets(ctx.bootstrap, names.inputs)
    if sum(ends.values()) != sent:
        raise ChildFailed(f"produced {sent:,} messages but the topics hold {sum(ends.values()):,}")
    child = worker_child(
        bootstrap=ctx.bootstrap,
        prefix=PREFIX,
        app_id=_APP,
        data_dir=ctx.dir("misrouted-state"),
        log_dir=ctx.dir("logs"),
    )
    ctx.children.start(child)

    async def consumed() -> float:
        return (await child.metrics()).value("funnel_events_consumed_total")

    try:
        await wait_healthy(child, timeout_s=_READY_TIMEOUT_S)
        caught = await wait_caught_up(
            bootstrap=ctx.bootstrap,
            group=_APP,
            ends=ends,
            child=child,
            processed=consumed,
            label="misrouted",
        )
        final = await child.metrics()
    finally:
        child.stop()
    moved = int(final.value("funnel_events_rerouted_total"))
    if moved != keyed:
        raise ChildFailed(f"moved {moved:,} records, but {keyed:,} were produced off their home")
    misrouted_rate = sent / (caught.done_at - child.started_at)
    out: Results = {
        "home_check_ns_per_record": check_ns,
        "worker_misrouted_events_per_s": misrouted_rate,
        "worker_misrouted_moved": moved,
    }
    if worker_events_per_s:
        out["home_check_share_of_worker_time"] = check_ns * 1e-9 * worker_events_per_s
        out["worker_misrouted_vs_home"] = misrouted_rate / worker_events_per_s
    return out
