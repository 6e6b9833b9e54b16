"""``kill -9`` at random moments while events stream in: the end state is the recount's, exactly.

A producer writes in the background for the whole test. The worker is killed (SIGKILL: no
shutdown, no final commit, no flush) at seeded random moments, some during start-up or table
recovery and some in the middle of processing, and restarted on the same state directory each
time. After the last restart it catches up, and then:

- every state gauge (window counts, open and overdue leads, oldest open lead) equals the
  offline recount over the topics;
- the dead-letter topic holds every rejected input message, named by its source topic,
  partition and offset, and nothing else (a batch replayed after a kill may dead-letter a
  message twice: at-least-once, recognisable by the headers).

Counters are process counters (a new process starts at 0, ``rate()`` handles the reset), so
they are compared in the scenarios without restarts (test_storms.py). Sizes: ``make test``
runs the default below; ``KILL9_EVENTS=200000 KILL9_KILLS=5`` is the full size of issue 6
(docs/reliability.md has both outcomes).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from stream.config.topics import TopicNames
from stream.core.rules import FunnelRules
from tests.reliability.support import (
    WorkerProcess,
    closing_events,
    consumed,
    dead_letters,
    do_recount,
    expected_gauges,
    expected_oldest,
    gauges,
    oldest_open,
    produce,
    produce_paced,
    read_records,
    rejections,
    traffic,
    wait_caught_up,
)

EVENTS = int(os.environ.get("KILL9_EVENTS", "20000"))
KILLS = int(os.environ.get("KILL9_KILLS", "5"))
SEED = 9
# The stream should outlast the kills: about 10 s per kill and restart.
RATE = max(200.0, EVENTS / (10.0 * KILLS))


async def kill_at_a_random_moment(worker: WorkerProcess, rng: random.Random) -> str:
    """Kill ``worker`` during start-up/recovery or while it processes; say which."""
    if rng.random() < 0.3:
        await asyncio.sleep(rng.uniform(0.5, 6.0))
        phase = "starting"
    else:
        worker.wait_ready(timeout=60)
        before = consumed(worker)
        deadline = time.monotonic() + 30
        while consumed(worker) <= before and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(rng.uniform(0.0, 2.0))
        phase = "processing"
    worker.kill()
    return phase


async def test_kill_9_at_random_moments_ends_exactly_as_the_recount(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    rng = random.Random(SEED)
    messages = traffic(names, EVENTS, seed=SEED)
    head = len(messages) // 5
    await produce(broker, messages[:head])
    stream = asyncio.create_task(produce_paced(broker, messages[head:], RATE))
    data_dir = tmp_path / "state"
    worker = WorkerProcess(broker, topic_prefix, data_dir)
    phases: list[str] = []
    try:
        for _ in range(KILLS):
            worker = WorkerProcess(broker, topic_prefix, data_dir).start()
            phases.append(await kill_at_a_random_moment(worker, rng))
        assert not stream.done(), "the stream ended before the kills: raise RATE's divisor"
        worker = WorkerProcess(broker, topic_prefix, data_dir).start()
        recovered = worker.wait_ready(timeout=60)
        await stream
        await produce(broker, closing_events(names))
        started = time.monotonic()
        await wait_caught_up(broker, worker.app_id, names.inputs, timeout=300)
        caught_up = time.monotonic() - started
        samples = worker.metrics()
    finally:
        worker.stop()
        stream.cancel()
    assert phases.count("processing") >= 2, phases

    records = await read_records(broker, names)
    expected = do_recount(records)
    assert gauges(samples) == expected_gauges(expected)
    assert oldest_open(samples) == expected_oldest(expected)

    letters = await dead_letters(broker, names)
    assert {letter.source for letter in letters} == rejections(records, FunnelRules().all_stages)
    print(
        f"kill9: events={len(records)} kills={phases} ready_after_last={recovered:.1f}s "
        f"caught_up={caught_up:.1f}s dead_letters={len(letters)}"
    )
