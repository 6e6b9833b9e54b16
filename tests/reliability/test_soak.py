"""The soak harness (bench/soak.py, ``make soak``) in miniature, so that it cannot rot.

The same run as the 20-minute soak on the session's broker, scaled down: 2,000 open leads,
15 s of the generator's mix at 1,000 events/s in 5-second blocks, Prometheus scraping every
second. The harness must produce every block (exact delays of the worker and of the raw
client in each, Prometheus's p99, RSS), find the worker's log clean, and find every state
gauge, on ``/metrics`` and in Prometheus, equal to the offline recount. The latency and
memory criteria are reported, not asserted: on a shared machine and over seconds they
measure the machine more than the worker.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.procs import Children
from bench.soak import Plan, run_soak
from bench.soakreport import json_line, table


async def test_the_soak_harness_runs_and_checks_the_gauges(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    plan = Plan(
        minutes=0.25,
        block_s=5.0,
        rate=1000.0,
        leads=2000,
        scrape_s=1.0,
        rss_every_s=1.0,
        prefix=topic_prefix,
    )
    children = Children()
    try:
        outcome = await run_soak(broker, tmp_path, children, plan)
    finally:
        children.stop_all()
    print(table(outcome, plan.block_s))
    assert outcome.steady_events == plan.steady_events
    assert outcome.recounted_events == plan.leads + plan.steady_events
    assert len(outcome.blocks) == 3
    assert sum(b.worker_n for b in outcome.blocks) == plan.steady_events
    assert sum(b.raw_n for b in outcome.blocks) == plan.steady_events
    assert all(b.worker_p99 is not None and b.rss_mb for b in outcome.blocks)
    assert any(b.prom_p99 is not None for b in outcome.blocks)
    criteria = outcome.criteria(plan.block_s)
    assert criteria["log_errors"]["pass"], outcome.log_first
    assert criteria["gauges_equal_recount"]["pass"], criteria["gauges_equal_recount"]
    assert criteria["rss_growth"]["value"] is not None
    assert criteria["p99_spread_s"]["value"] is not None
    assert json.loads(json_line(outcome, plan.block_s, None))["criteria"] == criteria
