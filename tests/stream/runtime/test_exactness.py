"""Exact results on the real broker: after ``kill -9`` and restarts, and across two workers.

The expectation is always the offline recount: the same core over the messages read back from
the topics. Every scenario ends with one closing event per partition at the same instant, so
that every partition's event clock (and so every worker's) ends at the same place.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

from stream.config.topics import TopicNames
from stream.core.rules import FunnelRules
from stream.observability.scrape import Samples
from stream.report.recount import recount
from tests.harness import WorkerProcess, all_series, produce, read_inputs, wait_caught_up
from tests.reliability.support import closing_events, traffic, wait_consumed


def gauges(samples: Samples) -> dict[tuple[str, ...], float]:
    """The funnel gauges a worker exports (non-zero series only)."""
    out: dict[tuple[str, ...], float] = {}
    for labels, v in samples.series("funnel_window_stage_entries"):
        if v:
            out[("window", labels["stage"], labels["window"], labels["period"])] = v
    for name in (
        "funnel_leads_awaiting_followup",
        "funnel_leads_overdue",
        "funnel_oldest_awaiting_followup_timestamp_seconds",
    ):
        for labels, v in samples.series(name):
            if v:
                out[(name, labels["team"])] = v
    return out


def expected_gauges(names: TopicNames, inputs: list) -> dict[tuple[str, ...], float]:  # type: ignore[type-arg]
    funnel = recount(inputs, FunnelRules()).funnel
    out: dict[tuple[str, ...], float] = {}
    for (stage, window, period), n in funnel.window_entries().items():
        if n:
            out[("window", stage, window, period)] = n
    for team, g in funnel.followup_gauges().items():
        for name, v in (
            ("funnel_leads_awaiting_followup", g.awaiting),
            ("funnel_leads_overdue", g.overdue),
            ("funnel_oldest_awaiting_followup_timestamp_seconds", g.oldest_clock_start or 0),
        ):
            if v:
                out[(name, team)] = v
    return out


async def test_kill_9_then_restart_from_the_changelog_alone_ends_as_the_recount(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Killed twice mid-stream: restarted first on its own state directory (the local store
    may be ahead of the changelog: replayed events are duplicates there), then on an empty
    one, so every state comes from the changelog alone, as on another machine after a
    rebalance. A state write missing from the changelog would show in the gauges."""
    names = TopicNames.from_prefix(topic_prefix)
    messages = traffic(names, 12_000, seed=11)
    half = len(messages) // 2
    await produce(broker, messages[:half])
    data_dir = tmp_path / "state"
    worker = WorkerProcess(broker, topic_prefix, data_dir).start()
    rest = asyncio.create_task(produce(broker, messages[half:] + closing_events(names)))
    try:
        worker.wait_ready()
        for fraction, state in ((0.25, data_dir), (0.6, tmp_path / "empty")):
            await wait_consumed(worker, fraction * len(messages) / 2)
            worker.kill()  # in the middle of the stream: no shutdown, no final commit
            worker = WorkerProcess(broker, topic_prefix, state).start()
            worker.wait_ready(timeout=60)
        await rest
        await wait_caught_up(broker, worker.app_id, names.inputs)
        inputs = await read_inputs(broker, names)
        assert gauges(worker.metrics()) == expected_gauges(names, inputs)
    finally:
        worker.stop()
        rest.cancel()


# Series that do not add up over workers: timing, the process, and configuration (every
# worker exports the same targets; dashboards take max() of those).
NOT_ADDITIVE = (
    "funnel_target_stage_entries",
    "funnel_sla_commitment_stage_entries",
    "funnel_sla_followup_seconds",
    "funnel_processing_delay_seconds",
    "funnel_last_processed_timestamp_seconds",
    "funnel_consumer_lag_messages",
    "funnel_build_info",
    "funnel_event_time_watermark_timestamp_seconds",
    "funnel_oldest_awaiting_followup_timestamp_seconds",
)


def summed(*samples: Samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    total: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
    for s in samples:
        for name, labels, value in all_series(s):
            if not name.startswith(NOT_ADDITIVE):
                total[(name, tuple(sorted(labels.items())))] += value
    return dict(total)


async def test_two_workers_sum_to_the_one_worker_result(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    # Two groups over the same topics: one worker alone, and a pair sharing the partitions.
    alone = WorkerProcess(broker, topic_prefix, tmp_path / "alone")
    alone.extra_env["FUNNEL_APP_ID"] = topic_prefix + "alone"
    pair = [WorkerProcess(broker, topic_prefix, tmp_path / f"pair{i}") for i in range(2)]
    for w in pair:
        w.extra_env["FUNNEL_APP_ID"] = topic_prefix + "pair"
    workers = [alone, *pair]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready(timeout=60)
        await produce(broker, traffic(names, 8_000, seed=5) + closing_events(names))
        await wait_caught_up(broker, topic_prefix + "alone", names.inputs)
        await wait_caught_up(broker, topic_prefix + "pair", names.inputs)
        one = summed(alone.metrics())
        two = summed(*(w.metrics() for w in pair))
        assert one == two
        # Each of the pair really did part of the work.
        for w in pair:
            assert w.metrics().value("funnel_events_consumed_total") > 0
        # The oldest open lead is a minimum, not a sum.
        oldest = "funnel_oldest_awaiting_followup_timestamp_seconds"
        for labels, v in alone.metrics().series(oldest):
            firsts = [s for w in pair for lb, s in w.metrics().series(oldest) if lb == labels and s]
            assert v == min(firsts, default=0.0)
    finally:
        for w in workers:
            w.stop()
