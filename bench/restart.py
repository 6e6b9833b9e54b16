"""Memory with 1,000,000 open leads, then the restart after ``kill -9`` with that state.

Hand-built ``lead_created`` events (no follow-up, so every lead stays awaiting) are produced to
the topics of prefix ``bench-mem.``; a worker on RocksDB catches up with them, and its peak
RSS (``VmHWM``) is read. The worker is then killed with SIGKILL and started again on the same
state directory; one more lead is produced right after the new process is spawned. The restart
time runs from the spawn until ``/health`` answers 200 *and* ``/metrics`` shows the new lead
applied on top of the exact old state: ``funnel_leads_awaiting_followup`` = leads + 1.

Before the kill, ``/leads`` is asked ``_LEAD_LIST_REQUESTS`` times with that state (each
status, with and without a team filter, the default limit and the largest): its p99 request
time is ``leads_p99_request_s_1m_open``.

That restart is the best case: the killed worker had caught up and was idle, so nothing was
in flight and nothing is replayed. So the worker is then started once more on the same
state, takes steady traffic (new open leads at the latency phase's rate), and is killed
while that traffic flows, with batches in flight and offsets not yet committed; a new process
is spawned at once while the traffic goes on. That restart's time runs from the spawn until
the group has committed every message that was on the broker at the kill (the replay of what
the dead process had not committed, and the backlog that built up meanwhile); then the
traffic stops and the state must again be exact (awaiting = every lead produced).
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.context import Context, Results
from bench.kafka import (
    Paced,
    committed_count,
    create_topics,
    end_offsets,
    open_leads,
    produce_all,
    produce_paced,
)
from bench.procs import Child, ChildFailed, worker_child
from bench.track import wait_caught_up, wait_healthy
from stream.config.topics import TopicNames
from stream.generate import OutMessage
from stream.observability.scrape import ScrapeError

log = logging.getLogger(__name__)

PREFIX = "bench-mem."
_APP = "bench-mem"
_READY_TIMEOUT_S = 600.0
_AWAITING = "funnel_leads_awaiting_followup"
_LEAD_AGE_S = 2 * 3600.0  # well inside the 24 h deadline: no lead is overdue or breached
_LEAD_LIST_REQUESTS = 200
_LEAD_LIST_QUERIES = (
    "status=awaiting",
    "status=awaiting&limit=1000",
    "status=awaiting&team=emea",
    "status=overdue",
    "status=at_risk&before=4h",
    "status=awaiting&scope=group",
)
# Steady traffic this long before the kill under traffic, so that batches are in flight.
_TRAFFIC_BEFORE_KILL_S = 5.0
# The traffic's leads are 1 ms apart in event time, from this long ago: never in the future.
_TRAFFIC_LEAD_AGE_S = 3600.0
_POLL_S = 0.25


async def run_memory_and_restart(ctx: Context) -> Results:
    """Peak RSS holding ``ctx.leads`` open leads, then seconds from restart to exact processing."""
    names = TopicNames.from_prefix(PREFIX)
    await create_topics(ctx.bootstrap, names)
    leads = open_leads(names, first=0, count=ctx.leads, start_s=time.time() - _LEAD_AGE_S)
    await produce_all(ctx.bootstrap, leads, "open leads")
    ends = await end_offsets(ctx.bootstrap, names.inputs)
    state_dir = ctx.dir("memory-state")
    first = _worker(ctx, state_dir)
    ctx.children.start(first)

    async def consumed() -> float:
        return (await first.metrics()).value("funnel_events_consumed_total")

    results: Results = {"open_leads": ctx.leads}
    try:
        await wait_healthy(first, timeout_s=_READY_TIMEOUT_S)
        caught = await wait_caught_up(
            bootstrap=ctx.bootstrap,
            group=_APP,
            ends=ends,
            child=first,
            processed=consumed,
            label="open leads",
        )
        awaiting = (await first.metrics()).value(_AWAITING)
        if awaiting != ctx.leads:
            raise ChildFailed(f"worker reports {awaiting:,.0f} awaiting leads, not {ctx.leads:,}")
        results["rss_mb_1m_open_leads"] = first.memory_mb("VmHWM")
        results["rss_mb_after_catch_up"] = first.memory_mb("VmRSS")
        results["open_leads_events_per_s"] = ctx.leads / (caught.done_at - first.started_at)
        results["leads_p99_request_s_1m_open"] = await asyncio.to_thread(_lead_list_p99, first)
        log.info("/leads: p99 %.3f s", results["leads_p99_request_s_1m_open"])
        log.info("open leads: peak RSS %.0f MB; kill -9", results["rss_mb_1m_open_leads"])
    finally:
        first.kill()
    results.update(await _restart(ctx, names, state_dir))
    results.update(await _restart_under_traffic(ctx, names, state_dir, ctx.leads + 1))
    return results


def _lead_list_p99(child: Child) -> float:
    """The p99 of ``/leads`` request times (client side, sequential requests)."""
    took = []
    for i in range(_LEAD_LIST_REQUESTS):
        query = _LEAD_LIST_QUERIES[i % len(_LEAD_LIST_QUERIES)]
        started = time.perf_counter()
        with urllib.request.urlopen(child.url(f"/leads?{query}"), timeout=30) as got:
            got.read()
            if got.status != 200:
                raise ChildFailed(f"/leads?{query} answered {got.status}")
        took.append(time.perf_counter() - started)
    took.sort()
    return took[max(0, -(-99 * len(took) // 100) - 1)]


def _worker(ctx: Context, state_dir: Path) -> Child:
    return worker_child(
        bootstrap=ctx.bootstrap,
        prefix=PREFIX,
        app_id=_APP,
        data_dir=state_dir,
        log_dir=ctx.dir("logs"),
    )


async def _restart(ctx: Context, names: TopicNames, state_dir: Path) -> Results:
    producer = AIOKafkaProducer(bootstrap_servers=[ctx.bootstrap], linger_ms=0)
    await producer.start()
    child = _worker(ctx, state_dir)
    try:
        ctx.children.start(child)
        (message,) = open_leads(names, first=ctx.leads, count=1, start_s=time.time() - 1.0)
        await producer.send_and_wait(message.topic, message.value, key=message.key)
        healthy_at = await wait_healthy(child, timeout_s=_READY_TIMEOUT_S)
        log.info("restart: healthy after %.1f s", healthy_at - child.started_at)
        wanted = ctx.leads + 1
        deadline = time.monotonic() + _READY_TIMEOUT_S
        awaiting = consumed = 0.0
        while time.monotonic() < deadline:
            child.check_alive()
            try:
                samples = await child.metrics()
            except ScrapeError:
                await asyncio.sleep(0.1)
                continue
            consumed = samples.value("funnel_events_consumed_total")
            awaiting = samples.value(_AWAITING)
            if consumed >= 1 and awaiting == wanted:
                done = time.monotonic()
                break
            if awaiting > wanted:
                raise ChildFailed(f"restart: {awaiting:,.0f} awaiting leads, more than {wanted:,}")
            await asyncio.sleep(0.1)
        else:
            raise ChildFailed(
                f"restart: after {_READY_TIMEOUT_S:.0f} s, consumed={consumed:.0f} "
                f"awaiting={awaiting:,.0f} (wanted {wanted:,})"
            )
        rss_after = child.memory_mb("VmHWM")
    finally:
        child.stop()
        await producer.stop()
    return {
        "restart_to_processing_s": done - child.started_at,
        "restart_to_healthy_s": healthy_at - child.started_at,
        "restart_peak_rss_mb": rss_after,
    }


async def _awaiting(child: Child) -> float | None:
    try:
        return (await child.metrics()).value(_AWAITING)
    except ScrapeError:
        return None


async def _wait_awaiting(child: Child, wanted: int, label: str) -> None:
    """Wait until ``child`` reports exactly ``wanted`` awaiting leads (more fails)."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while (awaiting := await _awaiting(child)) != wanted:
        child.check_alive()
        if awaiting is not None and awaiting > wanted:
            raise ChildFailed(f"{label}: {awaiting:,.0f} awaiting leads, more than {wanted:,}")
        if time.monotonic() > deadline:
            raise ChildFailed(f"{label}: {awaiting} awaiting leads after {_READY_TIMEOUT_S:.0f} s")
        await asyncio.sleep(_POLL_S)


async def _restart_under_traffic(
    ctx: Context, names: TopicNames, state_dir: Path, open_before: int
) -> Results:
    """Kill -9 while steady traffic flows; seconds from the new process's spawn until every
    message on the broker at the kill is committed (replay and backlog), traffic going on."""
    first = _worker(ctx, state_dir)
    ctx.children.start(first)
    stop = False

    def traffic() -> Iterator[OutMessage]:
        leads = open_leads(
            names, first=open_before, count=10**9, start_s=time.time() - _TRAFFIC_LEAD_AGE_S
        )
        for message in leads:
            if stop:
                return
            yield message

    second: Child | None = None
    producing: asyncio.Task[Paced] | None = None
    try:
        await wait_healthy(first, timeout_s=_READY_TIMEOUT_S)
        await _wait_awaiting(first, open_before, "before the traffic")
        producing = asyncio.create_task(
            produce_paced(ctx.bootstrap, traffic(), rate=ctx.steady_rate, label="kill in traffic")
        )
        await asyncio.sleep(_TRAFFIC_BEFORE_KILL_S)
        consumed = (await first.metrics()).value("funnel_events_consumed_total")
        if consumed < ctx.steady_rate:
            raise ChildFailed(f"kill in traffic: the worker consumed only {consumed:,.0f}")
        ends = await end_offsets(ctx.bootstrap, names.inputs)
        uncommitted = sum(ends.values()) - await committed_count(ctx.bootstrap, _APP, ends)
        first.kill()
        second = _worker(ctx, state_dir)
        ctx.children.start(second)
        log.info("kill in traffic: killed with %s messages not committed", f"{uncommitted:,}")
        total = sum(ends.values())
        deadline = time.monotonic() + _READY_TIMEOUT_S
        healthy_at: float | None = None
        while await committed_count(ctx.bootstrap, _APP, ends) < total:
            second.check_alive()
            if healthy_at is None and await second.health() == 200:
                healthy_at = time.monotonic()
            if time.monotonic() > deadline:
                raise ChildFailed(f"kill in traffic: not caught up in {_READY_TIMEOUT_S:.0f} s")
            await asyncio.sleep(_POLL_S)
        done = time.monotonic()
        flowing = not producing.done()
        stop = True
        paced = await producing
        if not flowing:
            log.warning("kill in traffic: the traffic ended before the restart caught up")
        await _wait_awaiting(second, open_before + paced.sent, "after the kill in traffic")
    finally:
        stop = True
        first.kill()
        if second is not None:
            second.stop()
        if producing is not None and not producing.done():
            producing.cancel()
    log.info("kill in traffic: caught up %.1f s after the spawn", done - second.started_at)
    return {
        "restart_under_traffic_to_caught_up_s": done - second.started_at,
        "restart_under_traffic_to_healthy_s": (
            None if healthy_at is None else healthy_at - second.started_at
        ),
        "restart_under_traffic_uncommitted_at_kill": uncommitted,
        "restart_under_traffic_events_per_s": paced.rate,
    }
