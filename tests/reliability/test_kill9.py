"""``kill -9`` at random moments while events stream in: the end state is the recount's, exactly.

A producer writes in the background for the whole test. The worker is killed (SIGKILL: no
shutdown, no final commit, no flush) at seeded random moments, some during start-up or table
recovery and some in the middle of processing, and restarted on the same state directory each
time. A kill "in the middle of processing" is made sure of: a backlog of several fetches is
produced while the worker is down, and the new worker is killed as soon as its consumed
count moves; the test requires that at least two kills found that count past 0 and short of
the backlog. After the last restart it catches up, and then:

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
# Before a kill in the middle of processing, this many messages are produced while the
# worker is down: more than two fetches' worth (the worker takes at most 20,000 records per
# fetch, stream.runtime.faustparts.MAX_RECORDS_PER_FETCH), so it works through them batch after
# batch, and a kill once its count has moved, but not past them, lands mid-catch-up.
BACKLOG = 50_000


async def consumed_now(worker: WorkerProcess) -> float:
    """The worker's consumed counter (0 if it does not answer), read off the event loop so
    that the background producer is not paused."""
    return await asyncio.to_thread(consumed, worker)


async def kill_in_the_backlog(worker: WorkerProcess) -> float:
    """Kill ``worker`` as soon as its consumed count moves; the count it had then."""
    deadline = time.monotonic() + 60
    while (seen := await consumed_now(worker)) == 0:
        assert worker.process is not None and worker.process.poll() is None, worker.tail()
        assert time.monotonic() < deadline, worker.tail()
        await asyncio.sleep(0.01)
    worker.kill()
    return seen


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
    plan = ["starting" if rng.random() < 0.3 else "processing" for _ in range(KILLS)]
    phases: list[str] = []
    try:
        for n, planned in enumerate(plan):
            if planned == "processing":
                # Produced while no worker runs: the next one starts with this backlog.
                await produce(broker, traffic(names, BACKLOG, seed=SEED + 1 + n))
            worker = WorkerProcess(broker, topic_prefix, data_dir).start()
            if planned == "processing":
                seen = await kill_in_the_backlog(worker)
                # Its count moved (a batch was done) and had not passed the backlog: batches
                # were being worked through when it was killed.
                phases.append("processing" if seen < BACKLOG else f"after {seen:.0f}")
            else:
                await asyncio.sleep(rng.uniform(0.5, 6.0))
                seen = await consumed_now(worker)
                worker.kill()
                phases.append("starting" if seen == 0 else f"after {seen:.0f}")
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
    print(f"kill9: planned={plan} observed={phases}")
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
