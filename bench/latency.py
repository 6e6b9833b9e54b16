"""Processing delay under a steady 5,000 events/s, from the worker's own histogram.

A worker (prefix ``bench-lat.``) first catches up with a warm-up of generated traffic. Then
the harness scrapes ``/metrics``, produces the continuation of the same traffic at a steady
rate, waits until every message is processed, and scrapes again. The difference of the two
scrapes' ``funnel_processing_delay_seconds`` buckets holds exactly the steady period's
messages; its quantiles are computed as PromQL's ``histogram_quantile`` does.
"""

from __future__ import annotations

import itertools
import logging

from bench.context import Context, Results
from bench.kafka import create_topics, end_offsets, generated, produce_all, produce_paced
from bench.procs import worker_child
from bench.track import wait_caught_up, wait_healthy
from stream.scrape import Samples
from stream.topics import TopicNames

log = logging.getLogger(__name__)

PREFIX = "bench-lat."
_APP = "bench-lat"
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


async def run_latency(ctx: Context) -> Results:
    """p50/p99 of the processing delay over ``ctx.steady_seconds`` at ``ctx.steady_rate``."""
    names = TopicNames.from_prefix(PREFIX)
    await create_topics(ctx.bootstrap, names)
    steady_count = int(ctx.steady_rate * ctx.steady_seconds)
    traffic = generated(names, count=ctx.warmup_events + steady_count, seed=ctx.seed + 1)
    await produce_all(ctx.bootstrap, itertools.islice(traffic, ctx.warmup_events), "warm-up")
    child = worker_child(
        bootstrap=ctx.bootstrap,
        prefix=PREFIX,
        app_id=_APP,
        data_dir=ctx.dir("latency-state"),
        log_dir=ctx.dir("logs"),
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
        paced = await produce_paced(
            ctx.bootstrap, traffic, rate=ctx.steady_rate, label="steady traffic"
        )
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
        log.warning("delay histogram holds %s observations for %s messages", observed, paced.sent)
    return {
        "p99_processing_delay_s_at_5k": delta.histogram_quantile(0.99, _DELAY),
        "p50_processing_delay_s_at_5k": delta.histogram_quantile(0.5, _DELAY),
        "mean_processing_delay_s_at_5k": (
            delta.value(f"{_DELAY}_sum") / observed if observed else None
        ),
        "steady_events_per_s": paced.rate,
        "steady_seconds": paced.seconds,
    }
