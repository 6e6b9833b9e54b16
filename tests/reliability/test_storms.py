"""Duplicate and reorder storms: the worker's gauges and counters equal the recount's exactly.

- Duplicate storm: every message is delivered three times; the copies follow the original a
  few seconds or several minutes later (in the traffic's own delivery time).
- Reorder storm: every message is delivered up to 30 minutes (of delivery time) away from its
  place, so events within any 30-minute span arrive in random order, across all topics.
- Hot visitor: 10,000 visits of one visitor (its state holds every one of them, within the
  duplicate horizon) keep at least half the rate of normal traffic, and each is counted once.

One worker per storm (both run at once, on their own topics) and no restarts, so the
counters are comparable too: messages consumed, applied,
duplicate and rejected per topic (and reason), stage entries and re-entries per stage,
follow-ups per team and SLA outcome, clock skew. Breaches are left out on purpose: a follow-up
delivered after later events of its own partition can meet a breach first (docs/semantics.md,
"The event clock"), which the reorder storm does on purpose.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path

from stream.config.topics import TopicNames
from stream.generate import OutMessage, generate_messages
from tests.reliability.support import (
    END,
    START,
    Message,
    WorkerProcess,
    closing_events,
    counters,
    do_recount,
    expected_counters,
    expected_gauges,
    expected_oldest,
    gauges,
    oldest_open,
    produce,
    rate,
    read_records,
    send_all,
    visit,
    wait_caught_up,
)

EVENTS = int(os.environ.get("STORM_EVENTS", "6000"))
MINUTE = 60.0


def duplicate_storm(msgs: list[OutMessage], rng: random.Random) -> list[Message]:
    """Each message three times: the original, then copies seconds or minutes later."""
    timed: list[tuple[float, int, Message]] = []
    for i, m in enumerate(msgs):
        for copy in range(3):
            if copy == 0:
                delay = 0.0
            elif rng.random() < 0.5:
                delay = rng.uniform(0.0, 5.0)
            else:
                delay = rng.uniform(2 * MINUTE, 20 * MINUTE)
            timed.append((m.timestamp + delay, i, (m.topic, m.key, m.value, None)))
    return [m for *_, m in sorted(timed, key=lambda x: (x[0], x[1]))]


def reorder_storm(msgs: list[OutMessage], rng: random.Random) -> list[Message]:
    """Every message moved by up to 30 minutes of delivery time: a shuffle within that span."""
    timed = [(m.timestamp + rng.uniform(0.0, 30 * MINUTE), m) for m in msgs]
    return [(m.topic, m.key, m.value, None) for _, m in sorted(timed, key=lambda x: x[0])]


STORMS = {"duplicate": duplicate_storm, "reorder": reorder_storm}


async def test_duplicate_and_reorder_storms_end_exactly_as_the_recount(
    broker: str, tmp_path: Path
) -> None:
    # Both storms at once, one worker each on its own topics: they overlap their start-ups.
    prefixes = {storm: f"t{uuid.uuid4().hex[:12]}." for storm in STORMS}
    names = {storm: TopicNames.from_prefix(prefix) for storm, prefix in prefixes.items()}
    workers = {
        storm: WorkerProcess(broker, prefix, tmp_path / storm).start()
        for storm, prefix in prefixes.items()
    }
    samples = {}
    try:
        for storm, make in STORMS.items():
            n = names[storm]
            base = list(generate_messages(seed=31, start=START, end=END, count=EVENTS, topics=n))
            await produce(broker, make(base, random.Random(31)) + closing_events(n))
        for storm, worker in workers.items():
            worker.wait_ready(timeout=60)
            await wait_caught_up(broker, worker.app_id, names[storm].inputs, timeout=120)
            samples[storm] = worker.metrics()
    finally:
        for worker in workers.values():
            worker.stop()
    for storm, n in names.items():
        expected = do_recount(await read_records(broker, n))
        got = samples[storm]
        if storm == "duplicate":  # every original was also seen twice more
            applied = sum(c for (_, o), c in expected.outcomes.items() if o == "applied")
            assert got.value("funnel_events_duplicate_total") >= 2 * applied
        assert gauges(got) == expected_gauges(expected), storm
        assert oldest_open(got) == expected_oldest(expected), storm
        assert counters(n, got) == expected_counters(expected), storm


HOT_VISITS = 10_000


async def test_a_hot_visitor_keeps_half_the_normal_rate(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    middle = START + (END - START) / 2
    normal = [
        (m.topic, m.key, m.value, None)
        for m in generate_messages(seed=5, start=START, end=middle, count=HOT_VISITS, topics=names)
    ]
    hot = [visit(names, f"hot-{i}", "hot-visitor", middle + i) for i in range(HOT_VISITS)]
    worker = WorkerProcess(broker, topic_prefix, tmp_path / "state").start()
    try:
        await send_all(broker, closing_events(names, START))
        worker.wait_ready(timeout=60)
        await wait_caught_up(broker, worker.app_id, names.inputs)
        normal_rate = await rate(worker, normal, broker)
        applied_before = worker.metrics().value("funnel_events_applied_total", topic=names.visits)
        hot_rate = await rate(worker, hot, broker)
        applied = worker.metrics().value("funnel_events_applied_total", topic=names.visits)
    finally:
        worker.stop()
    print(f"messages per CPU second: normal={normal_rate:.0f} hot visitor={hot_rate:.0f}")
    assert applied - applied_before == HOT_VISITS
    assert hot_rate >= 0.5 * normal_rate, (normal_rate, hot_rate)
