"""Rebalances with state moving between workers: the sum over workers is the recount's.

Two workers share the partitions while events stream in. One is killed (``kill -9``) and
restarted; then a third joins and one of the first two leaves (a clean stop, so it leaves the
group at once). Each move hands partitions, and their table state, to another worker, which
recovers it from the changelog into an empty or stale local store. At the end the two
remaining workers own every partition exactly once, and their gauges sum to the offline
recount. Sizes: ``REBALANCE_EVENTS`` (default below) messages in ``make test``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from stream.config.topics import TopicNames
from tests.harness import wait_split
from tests.reliability.support import (
    WorkerProcess,
    closing_events,
    do_recount,
    expected_gauges,
    expected_oldest,
    gauges,
    oldest_open,
    owners_lead_differences,
    produce,
    produce_paced,
    read_records,
    traffic,
    wait_caught_up,
    wait_consumed,
)

EVENTS = int(os.environ.get("REBALANCE_EVENTS", "12000"))
SEED = 23
# The stream lasts about as long as the moves below (about 30 s).
STREAM_SECONDS = 25.0


async def test_kill_join_and_leave_sum_to_the_recount(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    messages = traffic(names, EVENTS, seed=SEED)
    head = len(messages) // 4
    await produce(broker, messages[:head])
    stream = asyncio.create_task(
        produce_paced(broker, messages[head:], len(messages) / STREAM_SECONDS)
    )

    def worker(name: str) -> WorkerProcess:
        return WorkerProcess(broker, topic_prefix, tmp_path / name)

    a, b = worker("a").start(), worker("b").start()
    running = [a, b]
    try:
        a.wait_ready(timeout=60)
        b.wait_ready(timeout=60)
        await wait_split([a, b], names.inputs)
        await wait_consumed(a, 1)
        a.kill()
        a = worker("a").start()  # the same state directory: a stale store to catch up
        running = [a, b]
        a.wait_ready(timeout=60)
        await wait_split([a, b], names.inputs)
        c = worker("c").start()  # an empty store: every partition it gets is recovered
        running = [a, b, c]
        await wait_split([a, b, c], names.inputs)
        assert b.stop() == 0, b.tail(40)
        running = [a, c]
        await wait_split([a, c], names.inputs)
        await stream
        await produce(broker, closing_events(names))
        await wait_caught_up(broker, a.app_id, names.inputs, timeout=180)
        scrapes = [a.metrics(), c.metrics()]
    finally:
        stream.cancel()
        for w in running:
            w.stop()
    assert all(s.value("funnel_events_consumed_total") > 0 for s in scrapes)

    expected = do_recount(await read_records(broker, names))
    found, wanted = gauges(*scrapes), expected_gauges(expected)
    if found != wanted:  # where it went wrong: the stored states, or only the views
        differing = owners_lead_differences(
            expected, list(zip((a, c), scrapes, strict=True)), names
        )
        assert found == wanted, f"lead states stored unlike the recount's: {differing or 'none'}"
    assert oldest_open(*scrapes) == expected_oldest(expected)
