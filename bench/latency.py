"""Processing delay under a steady 5,000 events/s: exact, and from the worker's histogram.

A worker (prefix ``bench-lat.``, run through bench/delayworker.py, which also writes every
record's delay to a file) first catches up with a warm-up of generated traffic. Then the
harness scrapes ``/metrics``, notes how many delays the file holds, produces the
continuation of the same traffic at a steady rate (a process of its own samples the worker's
lag every second),
waits until every message is processed, and scrapes again.

- **Exact**: the delays the file gained, one per steady message (else the phase fails);
  their p50, p99 and p99.9 by nearest rank. The p99 target is judged on this figure.
- **The contract histogram**: the difference of the two scrapes'
  ``funnel_processing_delay_seconds`` buckets, which must hold exactly the steady period's
  messages (else the phase fails); its quantiles computed as PromQL's
  ``histogram_quantile`` does, interpolated within a bucket (.025 to .05 s, say).

Then the same traffic, warm-up included, goes to fresh topics; a plain aiokafka client that
only decodes (bench/rawdelay.py) reads the steady part from the ends, measured both ways too:
the delay the broker, the producer and the machine impose anyway, the floor under the
worker's figure. Both read partitions of the same length, which matters on the embedded
broker, whose fetch slows as a partition grows (docs/performance.md), and both windows run
the lag sampler, whose requests are broker work too.

Last, the raw client's window once more on fresh topics, nothing changed: the difference of
its p99 (p50) from the first's is what two identical windows differ by in this run, the
resolution the worker's added p99 (p50) is read against (docs/performance.md, "How far two
identical windows differ").
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import logging
import math
import multiprocessing
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped,unused-ignore]

from bench.context import Context, Results
from bench.kafka import (
    PARTITIONS,
    create_topics,
    end_offsets,
    generated,
    produce_all,
    produce_paced,
)
from bench.procs import Child, ChildFailed, raw_delay_child, worker_child
from bench.track import wait_caught_up, wait_healthy
from stream.config.topics import TopicNames
from stream.observability.scrape import Samples, parse_metrics

log = logging.getLogger(__name__)

PREFIX = "bench-lat."
RAW_PREFIX = "bench-lat-raw."
RAW_REPEAT_PREFIX = "bench-lat-raw2."
_RAW_READY_TIMEOUT_S = 30.0
_RAW_DONE_TIMEOUT_S = 60.0
_APP = "bench-lat"
_RAW_GROUP = "bench-lat-raw"  # a group that never commits: the raw client reads without one
_DELAY = "funnel_processing_delay_seconds"
_READY_TIMEOUT_S = 180.0


def histogram_delta(before: Samples, after: Samples, name: str) -> Samples:
    """The samples of histogram ``name`` observed between two scrapes (bucket by bucket)."""
    rows: dict[str, list[tuple[dict[str, str], float]]] = {}
    for suffix in ("_bucket", "_count", "_sum"):
        earlier = {_key(labels): value for labels, value in before.series(name + suffix)}
        rows[name + suffix] = [
            (labels, value - earlier.get(_key(labels), 0.0))
            for labels, value in after.series(name + suffix)
        ]
    return Samples(rows)


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def read_delays(path: Path, skip: int = 0) -> list[float]:
    """The delays (float64) appended to ``path``, after the first ``skip``, sorted."""
    delays = array.array("d")
    delays.frombytes(path.read_bytes()[skip * delays.itemsize :] if path.exists() else b"")
    return sorted(delays)


def delays_in(path: Path) -> int:
    """How many delays ``path`` holds."""
    return path.stat().st_size // array.array("d").itemsize if path.exists() else 0


def exact_quantile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile of sorted values by nearest rank: the least value with at least a
    share ``q`` of them at or below it (no interpolation). None when there are none."""
    if not ordered:
        return None
    rank = max(1, math.ceil(round(q * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


def exact_figures(ordered: Sequence[float], prefix: str, suffix: str) -> Results:
    """p50, p99 and p99.9 of sorted delays under ``<prefix>_p50_exact_<suffix>`` and so on."""
    return {
        f"{prefix}p{name}_exact_{suffix}": exact_quantile(ordered, q)
        for name, q in (("50", 0.5), ("99", 0.99), ("999", 0.999))
    }


async def _sample_lag(
    bootstrap: str, names: TopicNames, group: str, lags_path: str, stop: Any
) -> None:
    """Every second until ``stop`` (a process event) is set, how far ``group``'s committed
    offsets trail the ends, appended to ``lags_path`` one line each.

    Offsets are committed once a second, so up to a second's worth of messages is in this
    figure even for a worker that keeps up. This runs in a process of its own
    (``_lag_sampler``): in the producer's process its requests and their answers ran between
    the producer's sends (record timestamps are set at ``send``) and delayed records already
    stamped, during the worker's steady traffic and not the raw client's (docs/performance.md,
    "Where it stands"). The two clients are made once: a client made per sample bootstraps
    with the metadata of every topic on the broker. The end offsets are the broker's
    ListOffsets answers, which on the embedded broker can fall short of the end by part of a
    record batch: the figure is approximate.
    """
    tps = [TopicPartition(topic, p) for topic in names.inputs for p in range(PARTITIONS)]
    ends_client = AIOKafkaConsumer(bootstrap_servers=[bootstrap], group_id=None)
    admin = AIOKafkaAdminClient(bootstrap_servers=[bootstrap])
    await ends_client.start()
    await admin.start()
    try:
        with open(lags_path, "a", encoding="ascii") as out:
            while not stop.is_set():
                ends = await ends_client.end_offsets(tps)
                committed = await admin.list_consumer_group_offsets(group, partitions=tps)
                lag = sum(
                    max(0, end - max(0, committed[tp].offset if tp in committed else 0))
                    for tp, end in ends.items()
                )
                out.write(f"{lag}\n")
                out.flush()
                await asyncio.sleep(1.0)
    finally:
        await ends_client.stop()
        await admin.close()


async def _first_line(path: Path, sampler: Any, timeout_s: float = 60.0) -> None:
    """Wait until the lag sampler has written its first sample."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not (path.exists() and path.read_text(encoding="ascii").strip()):
        if not sampler.is_alive() or asyncio.get_running_loop().time() > deadline:
            raise ChildFailed("the lag sampler did not start")
        await asyncio.sleep(0.1)


def _lag_sampler(bootstrap: str, prefix: str, group: str, lags_path: str, stop: Any) -> None:
    """The lag sampler's process (``_sample_lag``)."""
    asyncio.run(_sample_lag(bootstrap, TopicNames.from_prefix(prefix), group, lags_path, stop))


@contextlib.asynccontextmanager
async def _lag_sampling(
    bootstrap: str, prefix: str, group: str, lags_path: Path
) -> AsyncIterator[None]:
    """The lag sampler running (its first sample taken) for the body, stopped after it;
    ``lags_path`` starts empty.

    Both steady windows run one, the worker's and the raw client's: its requests are work
    for the broker, which the two windows then share alike (docs/performance.md, "How the
    measuring stays out of the way").
    """
    lags_path.unlink(missing_ok=True)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    sampler = context.Process(
        target=_lag_sampler, args=(bootstrap, prefix, group, str(lags_path), stop), daemon=True
    )
    sampler.start()
    try:
        # Its start-up (an interpreter, its imports) is over before the traffic starts.
        await _first_line(lags_path, sampler)
        yield
    finally:
        stop.set()
        await asyncio.to_thread(sampler.join, 10.0)
        if sampler.is_alive():
            sampler.kill()


async def run_latency(ctx: Context) -> Results:
    """p50/p99 of the processing delay over ``ctx.steady_seconds`` at ``ctx.steady_rate``."""
    names = TopicNames.from_prefix(PREFIX)
    await create_topics(ctx.bootstrap, names)
    steady_count = int(ctx.steady_rate * ctx.steady_seconds)
    traffic = generated(names, count=ctx.warmup_events + steady_count, seed=ctx.seed + 1)
    await produce_all(ctx.bootstrap, itertools.islice(traffic, ctx.warmup_events), "warm-up")
    delays = ctx.dir("logs") / "worker-delays.f64"
    delays.unlink(missing_ok=True)
    child = worker_child(
        bootstrap=ctx.bootstrap,
        prefix=PREFIX,
        app_id=_APP,
        data_dir=ctx.dir("latency-state"),
        log_dir=ctx.dir("logs"),
        delays=delays,
    )
    ctx.children.start(child)

    async def consumed() -> float:
        return (await child.metrics()).value("funnel_events_consumed_total")

    async def catch_up(label: str) -> None:
        ends = await end_offsets(ctx.bootstrap, names.inputs)
        await wait_caught_up(
            bootstrap=ctx.bootstrap,
            group=_APP,
            ends=ends,
            child=child,
            processed=consumed,
            label=label,
        )

    try:
        await wait_healthy(child, timeout_s=_READY_TIMEOUT_S)
        await catch_up("latency warm-up")
        before = await child.metrics()
        warm_up_delays = delays_in(delays)
        lags_path = ctx.dir("logs") / "worker-lag.txt"
        async with _lag_sampling(ctx.bootstrap, PREFIX, _APP, lags_path):
            paced = await produce_paced(
                ctx.bootstrap, traffic, rate=ctx.steady_rate, label="steady traffic"
            )
        lags = [int(line) for line in lags_path.read_text(encoding="ascii").split()][1:]
        log.info("steady traffic: worker lag at most %s messages", max(lags, default=None))
        log.info(
            "steady traffic: %s messages in %.1f s (%.0f/s)", paced.sent, paced.seconds, paced.rate
        )
        await catch_up("steady traffic")
        after = await child.metrics()
    finally:
        child.stop()
    delta = histogram_delta(before, after, _DELAY)
    observed = delta.value(f"{_DELAY}_count")
    if observed != paced.sent:
        raise ChildFailed(
            f"the delay histogram holds {observed:,.0f} observations for {paced.sent:,} messages"
        )
    exact = read_delays(delays, skip=warm_up_delays)
    if len(exact) != paced.sent:
        raise ChildFailed(f"{len(exact):,} exact delays kept for {paced.sent:,} messages")
    raw = await _raw_client_delay(ctx, RAW_PREFIX, "raw_client_")
    # The same window once more, nothing changed: how far two identical windows' p99s (and
    # p50s) lie apart, the resolution the worker's figures are read against.
    repeat = await _raw_client_delay(ctx, RAW_REPEAT_PREFIX, "raw_client_repeat_")
    worker_exact = exact_figures(exact, "", "processing_delay_s_at_5k")
    added: Results = {}
    for q in ("p99", "p50"):
        floor = raw.get(f"raw_client_{q}_exact_delay_s_at_5k")
        again = repeat.get(f"raw_client_repeat_{q}_exact_delay_s_at_5k")
        added[f"raw_client_repeat_{q}_exact_delay_s_at_5k"] = again
        worker = worker_exact[f"{q}_exact_processing_delay_s_at_5k"]
        added[f"{q}_exact_added_by_worker_s_at_5k"] = _difference(worker, floor)
        added[f"{q}_exact_raw_client_repeat_diff_s_at_5k"] = _difference(again, floor)
    return (
        raw
        | worker_exact
        | added
        | {
            "max_exact_processing_delay_s_at_5k": exact[-1] if exact else None,
            "p99_processing_delay_s_at_5k": delta.histogram_quantile(0.99, _DELAY),
            "p50_processing_delay_s_at_5k": delta.histogram_quantile(0.5, _DELAY),
            "mean_processing_delay_s_at_5k": (
                delta.value(f"{_DELAY}_sum") / observed if observed else None
            ),
            "max_lag_messages_at_5k": max(lags, default=None),
            "steady_events_per_s": paced.rate,
            "steady_seconds": paced.seconds,
        }
    )


def _difference(value: object, reference: object) -> float | None:
    if isinstance(value, float) and isinstance(reference, float):
        return value - reference
    return None


async def _raw_client_delay(ctx: Context, prefix: str, keys: str) -> Results:
    """p50/p99 of now minus record timestamp for a plain client, under the same traffic, on
    fresh topics named with ``prefix``; the keys begin with ``keys``."""
    names = TopicNames.from_prefix(prefix)
    await create_topics(ctx.bootstrap, names)
    count = int(ctx.steady_rate * ctx.steady_seconds)
    # The same history before the steady traffic as the worker's topics hold (its warm-up):
    # the embedded broker's fetch slows as a partition grows, so a floor measured on shorter
    # partitions would charge the broker's extra time to the worker.
    traffic = generated(names, count=ctx.warmup_events + count, seed=ctx.seed + 1)
    await produce_all(ctx.bootstrap, itertools.islice(traffic, ctx.warmup_events), "raw warm-up")
    logs = ctx.dir(f"logs/{prefix.rstrip('.')}")  # its own: the log is appended to
    delays = logs / "raw-delays.f64"
    delays.unlink(missing_ok=True)
    child = raw_delay_child(
        bootstrap=ctx.bootstrap, topics=names.inputs, count=count, log_dir=logs, delays=delays
    )
    ctx.children.start(child)
    try:
        await _wait_for_line(child.log_path, "ready", _RAW_READY_TIMEOUT_S, child)
        # The same sampler as in the worker's window (the raw client is in no group: its
        # "lag" is the whole topic, and is not reported).
        async with _lag_sampling(ctx.bootstrap, prefix, _RAW_GROUP, logs / "raw-lag.txt"):
            await produce_paced(ctx.bootstrap, traffic, rate=ctx.steady_rate, label="raw client")
        exposition = await _wait_for_line(child.log_path, "", _RAW_DONE_TIMEOUT_S, child, exit=True)
    finally:
        child.stop()
    lines = exposition.split("ready\n", 1)[-1].splitlines()
    samples = parse_metrics("\n".join(line for line in lines if _DELAY in line) + "\n")
    observed = samples.value(f"{_DELAY}_count")
    exact = read_delays(delays)
    if observed != count or len(exact) != count:
        raise ChildFailed(
            f"raw client: {observed:,.0f} observations and {len(exact):,} exact delays "
            f"for {count:,} messages"
        )
    return exact_figures(exact, keys, "delay_s_at_5k") | {
        f"{keys}p99_delay_s_at_5k": samples.histogram_quantile(0.99, _DELAY),
        f"{keys}p50_delay_s_at_5k": samples.histogram_quantile(0.5, _DELAY),
    }


async def _wait_for_line(
    path: Path, line: str, timeout_s: float, child: Child, *, exit: bool = False
) -> str:
    """The text of ``path`` once it holds ``line`` (or, with ``exit``, once the child exited)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        if exit:
            if child.process is not None and child.process.poll() is not None:
                return text
        elif line in text.splitlines():
            return text
        else:
            child.check_alive()
        await asyncio.sleep(0.1)
    raise ChildFailed(f"{child.name}: no {'exit' if exit else repr(line)} within {timeout_s:.0f} s")
