"""Throughput over one input: the raw client, the naive Faust agent and the funnel worker.

The input (the generator's realistic mix: duplicates, malformed and out-of-order messages) is
produced once, before any consumer starts, to the topics of prefix ``bench-tp.``. Each consumer
then reads all of it in its own consumer group, one after the other, so none competes with
another for the CPU. Each rate is messages / seconds; "from start" counts from spawning the
process (or starting the client), "excluding start-up" from the moment it began processing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.context import Context, Results
from bench.kafka import Offsets, create_topics, end_offsets, generated, produce_all
from bench.procs import ChildFailed, fetch_json, naive_child, worker_child
from bench.profile import start_profiler, stop_profiler
from bench.track import wait_caught_up, wait_healthy
from schemas import Rejection, classify
from stream.config.settings import Settings
from stream.config.topics import TopicNames

log = logging.getLogger(__name__)

PREFIX = "bench-tp."
_RAW_GROUP = "bench-raw"
_NAIVE_APP = "bench-naive"
_WORKER_APP = "bench-worker"
_READY_TIMEOUT_S = 180.0
_RAW_IDLE_S = 60.0


@dataclass(frozen=True, slots=True)
class Input:
    """The produced input: topic names, end offsets and the message count."""

    names: TopicNames
    ends: Offsets

    @property
    def total(self) -> int:
        """Messages in the input topics."""
        return sum(self.ends.values())


async def prepare_input(ctx: Context) -> Input:
    """Produce ``ctx.events`` generated messages to the ``bench-tp.`` input topics."""
    names = TopicNames.from_prefix(PREFIX)
    await create_topics(ctx.bootstrap, names)
    messages = generated(names, count=ctx.events, seed=ctx.seed)
    sent = await produce_all(ctx.bootstrap, messages, "input")
    ends = await end_offsets(ctx.bootstrap, names.inputs)
    if sum(ends.values()) != sent:
        raise ChildFailed(f"produced {sent:,} messages but the topics hold {sum(ends.values()):,}")
    return Input(names, ends)


async def run_raw(ctx: Context, data: Input) -> Results:
    """A plain aiokafka consumer in a group: fetch and ``classify`` every message."""
    kinds = data.names.kinds
    stages = frozenset(Settings().funnel.all_stages)
    outcomes: Counter[str] = Counter()
    consumer = AIOKafkaConsumer(
        *data.names.inputs,
        bootstrap_servers=[ctx.bootstrap],
        group_id=_RAW_GROUP,
        auto_offset_reset="earliest",
        rebalance_timeout_ms=3000,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )
    started = time.monotonic()
    await consumer.start()
    first: float | None = None
    seen = 0
    last_data = time.monotonic()
    try:
        while seen < data.total:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            now = time.monotonic()
            if not batches:
                if now - last_data > _RAW_IDLE_S:
                    raise ChildFailed(f"raw client: nothing for {_RAW_IDLE_S:.0f} s at {seen:,}")
                continue
            last_data = now
            if first is None:
                first = now
            # The future-timestamp check's clock, read once per fetch as the worker does
            # (classify reads the wall clock per message without it).
            wall = time.time()
            for tp, records in batches.items():
                kind = kinds[tp.topic]
                for record in records:
                    result: Any = classify(kind, record.key, record.value, stages=stages, now=wall)
                    outcomes[result.reason if isinstance(result, Rejection) else kind] += 1
                seen += len(records)
        done = time.monotonic()
    finally:
        await consumer.stop()
    assert first is not None
    log.info("raw client: %s messages, mix %s", f"{seen:,}", dict(outcomes))
    rejected = sum(n for key, n in outcomes.items() if key not in kinds.values())
    return {
        "raw_client_events_per_s": seen / (done - first),
        "raw_client_events_per_s_from_start": seen / (done - started),
        "input_visits": outcomes["visits"],
        "input_leads": outcomes["leads"],
        "input_stage_changes": outcomes["transitions"],
        "input_rejected": rejected,
    }


async def run_naive(ctx: Context, data: Input) -> Results:
    """The naive Faust app of :mod:`bench.naive_app` over the input, in a subprocess."""
    child = naive_child(
        bootstrap=ctx.bootstrap,
        topics=data.names.inputs,
        app_id=_NAIVE_APP,
        data_dir=ctx.dir("naive-state"),
        log_dir=ctx.dir("logs"),
    )
    ctx.children.start(child)
    progress: dict[str, Any] = {}

    async def processed() -> float:
        progress.update(await fetch_json(child.url("/progress")))
        return float(progress["processed"])

    try:
        caught = await wait_caught_up(
            bootstrap=ctx.bootstrap,
            group=_NAIVE_APP,
            ends=data.ends,
            child=child,
            processed=processed,
            label="naive faust",
        )
        done_wall = time.time()
    finally:
        child.stop()
    total = data.total
    return {
        "naive_faust_events_per_s": total / (caught.done_at - child.started_at),
        "naive_faust_events_per_s_excl_startup": total / (done_wall - progress["first_at"]),
        "naive_faust_peak_rss_mb": caught.peak_rss_mb,
    }


async def run_worker(ctx: Context, data: Input) -> Results:
    """``funnel worker`` (event clock, RocksDB, fresh state) from spawn to every offset committed
    and ``funnel_events_consumed_total`` equal to the input's message count."""
    child = worker_child(
        bootstrap=ctx.bootstrap,
        prefix=PREFIX,
        app_id=_WORKER_APP,
        data_dir=ctx.dir("worker-state"),
        log_dir=ctx.dir("logs"),
    )
    ctx.children.start(child)
    profiler = None

    async def consumed() -> float:
        return (await child.metrics()).value("funnel_events_consumed_total")

    try:
        ready_at = await wait_healthy(child, timeout_s=_READY_TIMEOUT_S)
        cpu_at_ready = child.cpu_seconds()
        log.info("worker: healthy after %.1f s", ready_at - child.started_at)
        if ctx.profile_path is not None:  # the processing only, not the imports and start-up
            profiler = start_profiler(ctx.children, child.pid, ctx.profile_path, ctx.dir("logs"))
        caught = await wait_caught_up(
            bootstrap=ctx.bootstrap,
            group=_WORKER_APP,
            ends=data.ends,
            child=child,
            processed=consumed,
            label="worker",
        )
        if profiler is not None:
            stop_profiler(profiler, ctx.profile_path)
        cpu_at_done = child.cpu_seconds()
        final = await child.metrics()
        peak = child.memory_mb("VmHWM")
    finally:
        child.stop()
    total = data.total
    cpu_us = None
    if cpu_at_ready is not None and cpu_at_done is not None:
        cpu_us = round((cpu_at_done - cpu_at_ready) / total * 1e6, 2)
    return {
        "worker_events_per_s": total / (caught.done_at - child.started_at),
        "worker_events_per_s_excl_startup": total / (caught.done_at - ready_at),
        "worker_startup_s": ready_at - child.started_at,
        "worker_seconds": caught.done_at - child.started_at,
        "worker_peak_rss_mb": peak,
        # CPU time (both threads) per event after /health 200: less sensitive than the rates
        # to other work on a shared machine
        "worker_cpu_us_per_event": cpu_us,
        "worker_applied": int(final.value("funnel_events_applied_total")),
        "worker_duplicate": int(final.value("funnel_events_duplicate_total")),
        "worker_rejected": int(final.value("funnel_events_rejected_total")),
        # the two-worker phase checks that its workers' gauges add up to these
        "worker_funnel_leads_awaiting_followup": final.value("funnel_leads_awaiting_followup"),
        "worker_funnel_leads_overdue": final.value("funnel_leads_overdue"),
    }
