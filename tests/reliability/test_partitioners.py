"""Exact whatever partitioner the producers use (events.md, "Partitioning").

Leads come from aiokafka (murmur2: Kafka's default, the Java client's), their stage changes
from **confluent-kafka** (librdkafka, whose default partitioner is ``consistent_random``:
CRC32), visits from both, a tenth of the visits and stage changes a second time through the
other client (the same event on another partition: a duplicate), and some leads on explicit
round-robin partitions. The worker moves every record read off its key's home partition
there, counts it in ``funnel_events_rerouted_total``, and ends with the offline recount's
gauges and counters: alone, as two workers in one group, and killed with ``kill -9`` while
it moves records.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import Producer

from stream.config.topics import TopicNames
from stream.kafka.admin import ensure_topics
from stream.kafka.partitioner import home_partition
from stream.observability.scrape import Samples
from tests.reliability.support import (
    PARTITIONS,
    START,
    Message,
    Record,
    WorkerProcess,
    change,
    closing_events,
    counters,
    do_recount,
    expected_counters,
    expected_gauges,
    gauges,
    lead,
    produce,
    produce_paced,
    read_records,
    traffic,
    wait_caught_up,
)


async def produce_librdkafka(bootstrap: str, messages: Sequence[Message]) -> None:
    """Produce with confluent-kafka and its default partitioner, as a CRM sync might (the
    topics are created first with 8 partitions, as ``funnel topics`` would)."""
    await ensure_topics(bootstrap, {topic: PARTITIONS for topic, *_ in messages})
    await asyncio.to_thread(_librdkafka_send, bootstrap, messages)


def _librdkafka_send(bootstrap: str, messages: Sequence[Message]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for topic, key, value, _ in messages:
        producer.produce(topic, value=value, key=key)
        producer.poll(0)
    assert producer.flush(30) == 0


async def produce_mixed(bootstrap: str, names: TopicNames, messages: Sequence[Message]) -> None:
    """Send ``messages`` through both clients and several partitioners (see the module)."""
    await ensure_topics(bootstrap, {topic: PARTITIONS for topic in names.inputs})
    by_aiokafka: list[Message] = []
    by_librdkafka: list[Message] = []
    for i, (topic, key, value, _) in enumerate(messages):
        if topic == names.leads:
            partition = i % PARTITIONS if i % 5 == 0 else None  # some round-robin
            by_aiokafka.append((topic, key, value, partition))
        elif topic == names.transitions or i % 2:
            by_librdkafka.append((topic, key, value, None))
            if i % 10 == 3:
                by_aiokafka.append((topic, key, value, None))  # the same event again
        else:
            by_aiokafka.append((topic, key, value, None))
            if i % 10 == 4:
                by_librdkafka.append((topic, key, value, None))
    await produce(bootstrap, by_aiokafka)
    await produce_librdkafka(bootstrap, by_librdkafka)


def off_home(records: Sequence[Record]) -> Counter[str]:
    """Per input topic, the records read from another partition than their key's home."""
    return Counter(
        r.topic
        for r in records
        if r.key is not None and home_partition(r.key, PARTITIONS) != r.partition
    )


async def wait_rerouted(worker: WorkerProcess, at_least: float, timeout: float = 60) -> float:
    """Wait until ``worker`` has moved ``at_least`` records; returns how many it had."""
    deadline = time.monotonic() + timeout
    while (moved := worker.metrics().value("funnel_events_rerouted_total")) < at_least:
        assert time.monotonic() < deadline, worker.tail()
        await asyncio.sleep(0.1)
    return moved


def rerouted(*scrapes: Samples) -> Counter[str]:
    out: Counter[str] = Counter()
    for s in scrapes:
        for labels, v in s.series("funnel_events_rerouted_total"):
            if v:
                out[labels["topic"]] += int(v)
    return out


async def test_leads_from_aiokafka_and_follow_ups_from_librdkafka_all_match(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The field report: 200 leads, their 200 follow-ups 10 minutes later from another client.
    Every follow-up is matched: 200 within the SLA, none left awaiting."""
    names = TopicNames.from_prefix(topic_prefix)
    leads = [lead(names, f"l{i}", f"lead-{i}", START + i) for i in range(200)]
    follow_ups = [
        change(names, f"c{i}", f"lead-{i}", "contacted", START + i + 600) for i in range(200)
    ]
    await produce(broker, leads)
    await produce_librdkafka(broker, follow_ups)
    worker = WorkerProcess(broker, topic_prefix, tmp_path).start()
    try:
        worker.wait_ready()
        await wait_caught_up(broker, worker.app_id, names.inputs)
        s = worker.metrics()
    finally:
        worker.stop()
    assert s.value("funnel_followups_total", within_sla="true") == 200
    assert s.value("funnel_followups_total", within_sla="false") == 0
    assert s.value("funnel_leads_awaiting_followup") == 0
    moved = s.value("funnel_events_rerouted_total", topic=names.transitions)
    assert moved == off_home(await read_records(broker, names))[names.transitions]
    assert moved > 100  # most of librdkafka's choices differ from murmur2's (7 in 8)
    assert s.value("funnel_events_rerouted_total", topic=names.leads) == 0
    assert s.value("funnel_events_consumed_total", topic=names.transitions) == 200


async def test_mixed_partitioners_end_as_the_recount(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    await produce_mixed(broker, names, traffic(names, 4_000, seed=23) + closing_events(names))
    worker = WorkerProcess(broker, topic_prefix, tmp_path).start()
    try:
        worker.wait_ready()
        await wait_caught_up(broker, worker.app_id, names.inputs)
        s = worker.metrics()
    finally:
        worker.stop()
    records = await read_records(broker, names)
    expected = do_recount(records)
    moved = off_home(records)
    assert all(moved[topic] > 10 for topic in names.inputs), moved
    assert rerouted(s) == moved
    assert gauges(s) == expected_gauges(expected)
    assert counters(names, s) == expected_counters(expected)
    # Duplicates across partitioners were recognised as such.
    dupes = s.value("funnel_events_duplicate_total", topic=names.visits)
    assert dupes == expected_counters(expected)["funnel_events_duplicate_total|visits"]
    assert dupes >= 150


async def test_two_workers_move_records_between_them_exactly(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    pair = [WorkerProcess(broker, topic_prefix, tmp_path / f"w{i}") for i in range(2)]
    try:
        for w in pair:
            w.start()
        for w in pair:
            w.wait_ready(timeout=60)
        await produce_mixed(broker, names, traffic(names, 4_000, seed=29) + closing_events(names))
        await wait_caught_up(broker, pair[0].app_id, names.inputs)
        scrapes = [w.metrics() for w in pair]
    finally:
        for w in pair:
            w.stop()
    records = await read_records(broker, names)
    expected = do_recount(records)
    assert all(s.value("funnel_events_consumed_total") > 0 for s in scrapes)
    assert rerouted(*scrapes) == off_home(records)
    assert gauges(*scrapes) == expected_gauges(expected)
    assert counters(names, *scrapes) == expected_counters(expected)


async def test_kill_9_while_moving_records_loses_and_doubles_nothing(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Every record off its key's home partition, produced at a steady rate while the worker
    runs; it is killed twice while it reads and moves them, and restarted."""
    names = TopicNames.from_prefix(topic_prefix)
    messages = traffic(names, 12_000, seed=31)
    # Every record of a key on one partition that is not its home: all are moved.
    misrouted = [
        (topic, key, value, None if key is None else (home_partition(key, PARTITIONS) + 1) % 8)
        for topic, key, value, _ in messages
    ]
    await ensure_topics(broker, {topic: PARTITIONS for topic in names.inputs})
    worker = WorkerProcess(broker, topic_prefix, tmp_path / "state").start()
    worker.wait_ready(timeout=60)
    sending = asyncio.create_task(produce_paced(broker, misrouted, rate=2_000))
    try:
        for fraction in (0.2, 0.5):
            moved = await wait_rerouted(worker, fraction * len(messages))
            assert moved < len(messages)  # killed while records are being moved
            worker.kill()
            worker = WorkerProcess(broker, topic_prefix, tmp_path / "state").start()
            worker.wait_ready(timeout=60)
        await sending
        await produce(broker, closing_events(names))
        await wait_caught_up(broker, worker.app_id, names.inputs, timeout=180)
        s = worker.metrics()
    finally:
        worker.stop()
        sending.cancel()
    records = await read_records(broker, names)
    expected = do_recount(records)
    assert gauges(s) == expected_gauges(expected)
