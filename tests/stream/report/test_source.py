"""A report read in several processes gives the facts of one pass (stream/report/source.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stream.config.topics import TopicNames
from stream.core.funnel import ClockMode
from stream.core.rules import FunnelRules
from stream.kafka.admin import ensure_topics
from stream.kafka.partitioner import home_partition
from stream.report.facts import Collector, Facts
from stream.report.source import home_ranges
from tests.harness import produce
from tests.reliability.support import (
    CLOSE,
    END,
    START,
    Message,
    at,
    change,
    closing_events,
    key_at_home,
    traffic,
    visit,
)
from tests.stream.report.test_report import report_json

PARTITIONS = 8
DAY = 86400.0


def test_home_ranges_split_the_partitions_in_order() -> None:
    assert home_ranges(8, 2) == [range(0, 4), range(4, 8)]
    assert home_ranges(8, 3) == [range(0, 2), range(2, 5), range(5, 8)]
    assert home_ranges(2, 8) == [range(0, 1), range(1, 2)]
    assert home_ranges(8, 1) == [range(0, 8)]


def _by_partition(messages: list[Message], names: TopicNames) -> dict[tuple[str, int], list[Any]]:
    """Each topic's records per partition, stored where Kafka's default partitioner puts them."""
    out: dict[tuple[str, int], list[Any]] = {}
    for topic, key, value, partition in messages:
        p = partition if key is None else home_partition(key, PARTITIONS)
        out.setdefault((names.kinds[topic], p if p is not None else 0), []).append((key, value))
    return out


def _apply(
    collector: Collector, stored: dict[tuple[str, int], list[Any]], kinds: tuple[str, ...],
    homes: range,
) -> None:  # fmt: skip
    """What a report process does with the records of ``kinds`` on ``homes``, without Kafka."""
    for kind in kinds:
        for partition in homes:
            for key, value in stored.get((kind, partition), []):
                collector.add(kind, partition, key, value)  # type: ignore[arg-type]
        collector.read_all(kind)  # type: ignore[arg-type]


def _seen(facts: Facts) -> dict[str, Any]:
    """Everything a report reads of the facts, per day and over the whole data."""
    days = [START - DAY + i * DAY for i in range(6)]
    stages = ("visit", *FunnelRules().all_stages)
    return {
        "entries": [
            [(stage, list(facts.entries.by_source(stage, day, day + DAY))) for stage in stages]
            for day in days
        ],
        "earliest": facts.entries.earliest(),
        "leads": facts.leads,
        "journeys": facts.journeys,
        "as_of": facts.as_of,
        "messages": facts.messages,
        "rejected": facts.rejected,
    }


@pytest.mark.parametrize("clock", ["event", "wall"])
def test_visits_read_in_partition_ranges_give_the_facts_of_one_pass(clock: ClockMode) -> None:
    names = TopicNames.from_prefix("t.")
    # The generator's noise (copies, late and out-of-order deliveries, malformed messages),
    # leads known only from their stage changes, and the latest event of all a visit read by
    # another process: the clock's watermark comes from there.
    orphans = [
        change(names, f"o{p}-{stage}", key_at_home(f"orphan-{p}", p), stage, START + 600 * p)
        for p in range(PARTITIONS)
        for stage in ("lead", "mql")
    ]
    latest = CLOSE + 600.0
    last = visit(names, "late-1", key_at_home("late-visitor", PARTITIONS - 1), latest)
    messages = traffic(names, 20_000, seed=5) + orphans + closing_events(names) + [last]
    stored = _by_partition(messages, names)
    now = END + DAY

    def collector() -> Collector:
        return Collector(FunnelRules(), clock_mode=clock, now=now)

    whole = collector()
    _apply(whole, stored, ("visits", "leads", "transitions"), range(PARTITIONS))
    first, *others = home_ranges(PARTITIONS, 3)
    parts = []
    for homes in others:  # the other processes: the visits of their range
        part = collector()
        _apply(part, stored, ("visits",), homes)
        parts.append(part.visit_facts())
    merged = collector()  # this process: its visits, then every lead and stage change
    _apply(merged, stored, ("visits",), first)
    _apply(merged, stored, ("leads", "transitions"), range(PARTITIONS))
    for visits in parts:
        merged.add_visit_facts(visits)
    expected = whole.finish()
    assert expected.entries.count("visit", START, END) > 10_000
    assert expected.as_of == (latest if clock == "event" else now)
    assert _seen(merged.finish()) == _seen(expected)


async def test_a_report_read_in_processes_equals_one_read_in_one(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    await produce(broker, traffic(names, 6_000, seed=29) + closing_events(names))
    env = {"FUNNEL_BROKER": broker, "FUNNEL_TOPIC_PREFIX": topic_prefix, "FUNNEL_CLOCK": "event"}
    configs = {}
    for n in (1, 2):
        configs[n] = tmp_path / f"processes-{n}.toml"
        configs[n].write_text(f"[report]\nprocesses = {n}\n", encoding="utf-8")

    def reports() -> dict[int, dict[str, Any]]:
        out = {}
        for n, path in configs.items():
            report = report_json({**env, "FUNNEL_CONFIG": str(path)}, "2026-11-01", "2026-12-01")
            report.pop("generated_at", None)
            out[n] = report
        return out

    before = reports()
    assert before[2] == before[1]
    assert before[1]["entries"]["visit"] > 1000
    # A visit stored on a partition of another process's range than its home's: the read
    # starts again in one process, and the visit is counted like any other.
    key = key_at_home("away-visitor", 0)
    away = (names.visits, key.encode(), _visit(key), PARTITIONS - 1)
    await produce(broker, [away])
    after = reports()
    assert after[2] == after[1]
    assert after[1]["entries"]["visit"] == before[1]["entries"]["visit"] + 1


def _visit(visitor_id: str) -> bytes:
    return (
        f'{{"event_id": "away-1", "type": "visit", "occurred_at": "{at(START + 60)}", '
        f'"visitor_id": "{visitor_id}", "source": "organic"}}'
    ).encode()


async def test_partitions_beyond_the_configured_count_are_read_too(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Topics with more partitions than ``partitions`` (grown by hand): a record stored on a
    partition no range owns is still read, as in one process."""
    names = TopicNames.from_prefix(topic_prefix)
    await ensure_topics(broker, {topic: PARTITIONS + 4 for topic in names.inputs})
    key = key_at_home("grown-visitor", 0)
    await produce(broker, [(names.visits, key.encode(), _visit(key), PARTITIONS + 2)])
    env = {"FUNNEL_BROKER": broker, "FUNNEL_TOPIC_PREFIX": topic_prefix, "FUNNEL_CLOCK": "event"}
    config = tmp_path / "processes-2.toml"
    config.write_text("[report]\nprocesses = 2\n", encoding="utf-8")
    report = report_json({**env, "FUNNEL_CONFIG": str(config)}, "2026-11-01", "2026-12-01")
    assert report["entries"]["visit"] == 1
