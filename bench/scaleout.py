"""Two workers in one consumer group over the throughput input: what one more worker buys.

Both are spawned at once with the same app id (one group); the rate counts from the first
spawn until every input offset is committed and the two workers together report every message
consumed. The phase fails unless their counters add up to the input and their open-lead
gauges add up to the single worker's of the same run (the ``worker`` phase).
"""

from __future__ import annotations

import asyncio
import logging

from bench.context import Context, Results
from bench.procs import ChildFailed, worker_child
from bench.throughput import Input
from bench.track import wait_caught_up, wait_healthy

log = logging.getLogger(__name__)

_APP = "bench-worker2"
_READY_TIMEOUT_S = 180.0
# Gauges that must add up over the two workers to the one worker's value.
_SUMMED = ("funnel_leads_awaiting_followup", "funnel_leads_overdue")


async def run_two_workers(ctx: Context, data: Input, one: Results) -> Results:
    """Two ``funnel worker`` processes sharing the input's 8 partitions."""
    children = [
        worker_child(
            bootstrap=ctx.bootstrap,
            prefix=data.names.visits.removesuffix("visits"),
            app_id=_APP,
            data_dir=ctx.dir(f"worker2-state-{i}"),
            log_dir=ctx.dir("logs"),
        )
        for i in range(2)
    ]
    for child in children:
        ctx.children.start(child)
    started = min(child.started_at for child in children)

    async def consumed() -> float:
        scrapes = await asyncio.gather(*(child.metrics() for child in children))
        return sum(s.value("funnel_events_consumed_total") for s in scrapes)

    try:
        for child in children:
            await wait_healthy(child, timeout_s=_READY_TIMEOUT_S)
        caught = await wait_caught_up(
            bootstrap=ctx.bootstrap,
            group=_APP,
            ends=data.ends,
            child=children[0],
            processed=consumed,
            label="two workers",
        )
        scrapes = await asyncio.gather(*(child.metrics() for child in children))
    finally:
        for child in children:
            child.stop()
    shares = [s.value("funnel_events_consumed_total") for s in scrapes]
    if min(shares) == 0:
        raise ChildFailed(f"one worker of the two consumed nothing: {shares}")
    rate = data.total / (caught.done_at - started)
    out: Results = {
        "worker2_events_per_s": rate,
        "worker2_consumed_shares": min(shares) / sum(shares),
    }
    for name in _SUMMED:
        total = sum(s.value(name) for s in scrapes)
        expected = one.get(f"worker_{name}")
        if isinstance(expected, int | float) and total != expected:
            raise ChildFailed(
                f"{name}: two workers sum to {total:,.0f}, one worker had {expected:,.0f}"
            )
    single = one.get("worker_events_per_s")
    if isinstance(single, int | float) and single:
        out["worker2_over_worker"] = rate / single
    return out
