"""Hand-built scenarios through the real worker, every expected number written down by hand.

The end-to-end "exact" tests elsewhere compare the worker with the offline recount, which
runs the same core: a bug in the core passes them. Here each scenario is a few leads whose
every figure is worked out in the comments from docs/semantics.md, never by the code under
test: the wall clock's breaches fired by the worker's timer, a business-hours calendar, the
breach grace, a clock that starts at ``mql``, leads spread over several partitions (one
record sent to the wrong partition), and the same spread shared by two workers.

Records are applied on their key's home partition (Kafka's default murmur2 partitioner). In
event clock each partition has its own clock, the lower of the highest ``occurred_at`` of
its ``lead_created`` and of its ``stage_changed`` events; so the keys of a scenario are
chosen on one home partition, written down next to them (``KEYS`` checks the choice), and
each scenario closes with a lead and its follow-up that set that clock. Each topic's
messages are produced in event-time order, so that no partition clock passes a warning or
a deadline before the follow-up that stops it has been read.

Every lead has ``source`` ``direct`` (the builders' default). Unless a scenario says
otherwise the rules are the defaults: a 24 h SLA from the ``lead`` stage, warnings 4 h and
1 h before the deadline, no grace, no calendar.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from stream.config.topics import TopicNames
from stream.kafka.partitioner import home_partition
from stream.observability.scrape import Samples
from tests.harness import WorkerProcess, produce, wait_caught_up, wait_split
from tests.reliability.support import Message, change, lead, visit

HOUR = 3600.0
DAY = 86400.0

# Keys and their home partitions of 8 (Kafka's default partitioner), chosen by hand.
KEYS = {
    "biz-W-3": 3,
    "biz-X-11": 3,
    "biz-Y-26": 3,
    "biz-Z-1": 3,
    "biz-K-10": 3,
    "grace-A-10": 6,
    "grace-B-11": 6,
    "grace-C-6": 6,
    "grace-K-1": 6,
    "mql-M1-5": 4,
    "mql-M2-1": 4,
    "mql-M3-7": 4,
    "mql-M4": 4,
    "mql-M5-11": 4,
    "mql-K-2": 4,
    "part-A1-3": 1,
    "part-K1-12": 1,
    "part-A5-10": 5,
    "part-K5-3": 5,
}

# What each metric's series are told apart by; histograms by their _count and _sum.
LABELS = {
    "funnel_stage_entries_total": ("stage", "source"),
    "funnel_followups_total": ("team", "within_sla"),
    "funnel_followup_latency_seconds_count": ("team",),
    "funnel_followup_latency_seconds_sum": ("team",),
    "funnel_followup_business_latency_seconds_count": ("team",),
    "funnel_followup_business_latency_seconds_sum": ("team",),
    "funnel_followup_sla_breaches_total": ("team",),
    "funnel_followup_sla_warnings_total": ("team", "before"),
    "funnel_followup_clock_skew_total": ("team",),
    "funnel_leads_at_risk": ("team", "before"),
    "funnel_leads_awaiting_followup": ("team",),
    "funnel_leads_overdue": ("team",),
    "funnel_oldest_awaiting_followup_timestamp_seconds": ("team",),
}
OLDEST = "funnel_oldest_awaiting_followup_timestamp_seconds"

Expected = Mapping[str, Mapping[tuple[str, ...], float]]


def at(text: str) -> float:
    """Epoch seconds of an ISO time such as ``2026-11-20T15:00+00:00``."""
    return datetime.fromisoformat(text).timestamp()


def nonzero(scrapes: Sequence[Samples], name: str) -> dict[tuple[str, ...], float]:
    """The non-zero series of ``name``, summed over workers (the oldest open lead: the least)."""
    out: dict[tuple[str, ...], float] = {}
    for samples in scrapes:
        for labels, value in samples.series(name):
            if not value:
                continue
            key = tuple(labels[label] for label in LABELS[name])
            if name == OLDEST:
                out[key] = min(out.get(key, value), value)
            else:
                out[key] = out.get(key, 0.0) + value
    return out


def check(scrapes: Sequence[Samples], expected: Expected) -> None:
    """Every series of every metric in ``expected`` as written there (absent: 0)."""
    assert set(expected) <= set(LABELS)
    for name, series in expected.items():
        assert nonzero(scrapes, name) == {k: float(v) for k, v in series.items()}, name


def events(scrapes: Sequence[Samples], names: TopicNames, outcome: str) -> dict[str, float]:
    """``funnel_events_<outcome>_total`` per topic kind, summed over workers (non-zero)."""
    out: dict[str, float] = {}
    for samples in scrapes:
        for labels, value in samples.series(f"funnel_events_{outcome}_total"):
            if value:
                kind = names.kinds[labels["topic"]]
                out[kind] = out.get(kind, 0.0) + value
    return out


def test_the_keys_are_on_the_partitions_written_down() -> None:
    assert {key: home_partition(key.encode(), 8) for key in KEYS} == KEYS


async def run_event_scenario(
    broker: str,
    prefix: str,
    tmp_path: Path,
    messages: list[Message],
    config: str = "",
) -> tuple[TopicNames, list[Samples]]:
    """Produce ``messages``, run one worker in event clock until it has committed them all."""
    names = TopicNames.from_prefix(prefix)
    env: dict[str, str] = {}
    if config:
        path = tmp_path / "funnel.toml"
        path.write_text(config)
        env["FUNNEL_CONFIG"] = str(path)
    await produce(broker, messages)
    worker = WorkerProcess(broker, prefix, tmp_path / "state", extra_env=env).start()
    try:
        worker.wait_ready(timeout=60)
        await wait_caught_up(broker, worker.app_id, names.inputs)
        return names, [worker.metrics()]
    finally:
        worker.stop()


# -- a business-hours calendar -------------------------------------------------------------

BUSINESS = """
[sla]
followup_within = "8h"

[sla.business_hours]
time_zone = "UTC"
days = ["mon", "tue", "wed", "thu", "fri"]
start = "09:00"
end = "17:00"
"""


async def test_business_hours_latency_and_a_deadline_over_the_weekend(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    """An 8 h SLA on business hours (Mon-Fri 09:00-17:00 UTC), all on partition 3.

    Friday 2026-11-20 to Monday 2026-11-23. The partition's clock ends at Monday 17:30.

    - W (north), created Fri 15:00, contacted Mon 10:00: 67 h = 241,200 s of wall time,
      2 h (Fri 15-17) + 1 h (Mon 09-10) = 10,800 s of business time: within the SLA, which
      wall time would have missed. Its warnings (Mon 11:00, 14:00) come after it.
    - X (south), created Fri 16:00, never followed up: 1 h on Friday, so the 4 h warning is
      at Mon 12:00 (3 h into Monday), the 1 h one at Mon 15:00 and the deadline over the
      weekend at Mon 16:00, which the clock passes: one breach, overdue.
    - Y (south), created Saturday 10:00 (closed: its clock waits for Monday 09:00),
      contacted Mon 09:30: 47.5 h = 171,000 s of wall time, 1,800 s of business time.
    - Z (north), created Mon 08:00 (before opening), never followed up: warnings at 13:00
      (4 h) and 16:00 (1 h), both passed, so at risk for both. Its 8 business hours end at
      Mon 17:00, a closing time: the deadline is then the next opening, Tue 09:00, so at
      17:30 it is neither overdue nor breached.
    - K (north), created and contacted Mon 17:30 (after closing): 0 s both ways, within.
    """
    names = TopicNames.from_prefix(topic_prefix)
    w, x, y, z, k = "biz-W-3", "biz-X-11", "biz-Y-26", "biz-Z-1", "biz-K-10"
    leads = [
        lead(names, "l-w", w, at("2026-11-20T15:00+00:00"), team="north"),
        lead(names, "l-x", x, at("2026-11-20T16:00+00:00"), team="south"),
        lead(names, "l-y", y, at("2026-11-21T10:00+00:00"), team="south"),
        lead(names, "l-z", z, at("2026-11-23T08:00+00:00"), team="north"),
        lead(names, "l-k", k, at("2026-11-23T17:30+00:00"), team="north"),
    ]
    changes = [
        change(names, "c-y", y, "contacted", at("2026-11-23T09:30+00:00")),
        change(names, "c-w", w, "contacted", at("2026-11-23T10:00+00:00")),
        change(names, "c-k", k, "contacted", at("2026-11-23T17:30+00:00")),
    ]
    names, scrapes = await run_event_scenario(
        broker, topic_prefix, tmp_path, leads + changes, BUSINESS
    )
    check(
        scrapes,
        {
            "funnel_stage_entries_total": {("lead", "direct"): 5, ("contacted", "direct"): 3},
            "funnel_followups_total": {("north", "true"): 2, ("south", "true"): 1},  # W K, Y
            "funnel_followup_latency_seconds_count": {("north",): 2, ("south",): 1},
            "funnel_followup_latency_seconds_sum": {("north",): 241_200, ("south",): 171_000},
            "funnel_followup_business_latency_seconds_count": {("north",): 2, ("south",): 1},
            "funnel_followup_business_latency_seconds_sum": {("north",): 10_800, ("south",): 1_800},
            "funnel_followup_sla_breaches_total": {("south",): 1},  # X
            "funnel_followup_sla_warnings_total": {
                ("south", "4h"): 1,  # X
                ("south", "1h"): 1,  # X
                ("north", "4h"): 1,  # Z
                ("north", "1h"): 1,  # Z
            },
            "funnel_followup_clock_skew_total": {},
            "funnel_leads_at_risk": {("north", "4h"): 1, ("north", "1h"): 1},  # Z
            "funnel_leads_awaiting_followup": {("north",): 1, ("south",): 1},  # Z, X
            "funnel_leads_overdue": {("south",): 1},  # X
            OLDEST: {
                ("north",): at("2026-11-23T08:00+00:00"),
                ("south",): at("2026-11-20T16:00+00:00"),
            },
        },
    )


# -- the breach grace ----------------------------------------------------------------------


async def test_breach_grace_delays_breaches_and_overdue_but_not_the_sla(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A 24 h SLA with ``breach_grace = "2h"``, all on partition 6; the clock ends at
    day 1 09:30 (day 0 is 2026-11-20).

    - A (north), created day 0 08:00, contacted day 1 09:00: 25 h = 90,000 s, not within the
      SLA (24 h), but before deadline + grace (day 1 10:00): no breach. Its warnings
      (day 1 04:00 and 07:00) come before the follow-up: both counted.
    - B (north), created day 0 09:00, never followed up: past its deadline (day 1 09:00)
      but not its deadline + grace (11:00): neither breached nor overdue, at risk for both
      warnings (05:00, 08:00), counted.
    - C (south), created day 0 06:00, never followed up: deadline + grace at day 1 08:00,
      passed: one breach, overdue, both warnings (02:00, 05:00).
    - K (south), created and contacted day 1 09:30: 0 s, within.
    """
    names = TopicNames.from_prefix(topic_prefix)
    a, b, c, k = "grace-A-10", "grace-B-11", "grace-C-6", "grace-K-1"
    messages = [
        lead(names, "l-c", c, at("2026-11-20T06:00+00:00"), team="south"),
        lead(names, "l-a", a, at("2026-11-20T08:00+00:00"), team="north"),
        lead(names, "l-b", b, at("2026-11-20T09:00+00:00"), team="north"),
        lead(names, "l-k", k, at("2026-11-21T09:30+00:00"), team="south"),
        change(names, "c-a", a, "contacted", at("2026-11-21T09:00+00:00")),
        change(names, "c-k", k, "contacted", at("2026-11-21T09:30+00:00")),
    ]
    config = '[sla]\nbreach_grace = "2h"\n'
    names, scrapes = await run_event_scenario(broker, topic_prefix, tmp_path, messages, config)
    check(
        scrapes,
        {
            "funnel_stage_entries_total": {("lead", "direct"): 4, ("contacted", "direct"): 2},
            "funnel_followups_total": {("north", "false"): 1, ("south", "true"): 1},  # A, K
            "funnel_followup_latency_seconds_count": {("north",): 1, ("south",): 1},
            "funnel_followup_latency_seconds_sum": {("north",): 90_000},
            "funnel_followup_sla_breaches_total": {("south",): 1},  # C
            "funnel_followup_sla_warnings_total": {
                ("north", "4h"): 2,  # A, B
                ("north", "1h"): 2,  # A, B
                ("south", "4h"): 1,  # C
                ("south", "1h"): 1,  # C
            },
            "funnel_followup_clock_skew_total": {},
            "funnel_leads_at_risk": {("north", "4h"): 1, ("north", "1h"): 1},  # B
            "funnel_leads_awaiting_followup": {("north",): 1, ("south",): 1},  # B, C
            "funnel_leads_overdue": {("south",): 1},  # C
            OLDEST: {
                ("north",): at("2026-11-20T09:00+00:00"),
                ("south",): at("2026-11-20T06:00+00:00"),
            },
        },
    )


# -- the clock starts at mql ---------------------------------------------------------------


async def test_the_clock_starts_at_mql(broker: str, topic_prefix: str, tmp_path: Path) -> None:
    """``clock_starts_at = "mql"``, a 24 h SLA, all on partition 4; the clock ends at day 1
    09:30 (day 0 is 2026-11-20).

    - M1 (north), created day 0 08:00, mql 10:00, contacted 12:00: 7,200 s (from the mql;
      from the lead it would be 14,400 s).
    - M2 (north), created day 0 09:00, nothing else: no clock, so not awaiting, no breach,
      though 24 h have passed since it was created.
    - M3 (south), created day 0 07:00, mql 08:00, never followed up: deadline day 1 08:00
      (not 07:00), passed: one breach, overdue, both warnings (day 1 04:00 and 07:00); its
      clock start is day 0 08:00.
    - M4 (south), created day 0 10:00, contacted 11:00, mql 12:00: stopped before it
      started, latency 0, clock skew, within the SLA.
    - M5 (north), created day 1 07:00, mql 08:00: open, its warnings (day 2 04:00 and 07:00)
      still ahead; its clock start is day 1 08:00.
    - K (north), created, mql and contacted day 1 09:30: 0 s, within, no skew.
    """
    names = TopicNames.from_prefix(topic_prefix)
    m1, m2, m3, m4, m5, k = "mql-M1-5", "mql-M2-1", "mql-M3-7", "mql-M4", "mql-M5-11", "mql-K-2"
    messages = [
        lead(names, "l-m3", m3, at("2026-11-20T07:00+00:00"), team="south"),
        lead(names, "l-m1", m1, at("2026-11-20T08:00+00:00"), team="north"),
        lead(names, "l-m2", m2, at("2026-11-20T09:00+00:00"), team="north"),
        lead(names, "l-m4", m4, at("2026-11-20T10:00+00:00"), team="south"),
        lead(names, "l-m5", m5, at("2026-11-21T07:00+00:00"), team="north"),
        lead(names, "l-k", k, at("2026-11-21T09:30+00:00"), team="north"),
        change(names, "q-m3", m3, "mql", at("2026-11-20T08:00+00:00")),
        change(names, "q-m1", m1, "mql", at("2026-11-20T10:00+00:00")),
        change(names, "c-m4", m4, "contacted", at("2026-11-20T11:00+00:00")),
        change(names, "c-m1", m1, "contacted", at("2026-11-20T12:00+00:00")),
        change(names, "q-m4", m4, "mql", at("2026-11-20T12:00+00:00")),
        change(names, "q-m5", m5, "mql", at("2026-11-21T08:00+00:00")),
        change(names, "q-k", k, "mql", at("2026-11-21T09:30+00:00")),
        change(names, "c-k", k, "contacted", at("2026-11-21T09:30+00:00")),
    ]
    config = '[sla]\nclock_starts_at = "mql"\n'
    names, scrapes = await run_event_scenario(broker, topic_prefix, tmp_path, messages, config)
    check(
        scrapes,
        {
            "funnel_stage_entries_total": {
                ("lead", "direct"): 6,
                ("mql", "direct"): 5,  # M1, M3, M4, M5, K
                ("contacted", "direct"): 3,  # M1, M4, K
            },
            "funnel_followups_total": {("north", "true"): 2, ("south", "true"): 1},  # M1 K, M4
            "funnel_followup_latency_seconds_count": {("north",): 2, ("south",): 1},
            "funnel_followup_latency_seconds_sum": {("north",): 7_200},
            "funnel_followup_sla_breaches_total": {("south",): 1},  # M3
            "funnel_followup_sla_warnings_total": {("south", "4h"): 1, ("south", "1h"): 1},
            "funnel_followup_clock_skew_total": {("south",): 1},  # M4
            "funnel_leads_at_risk": {},
            "funnel_leads_awaiting_followup": {("north",): 1, ("south",): 1},  # M5, M3
            "funnel_leads_overdue": {("south",): 1},  # M3
            OLDEST: {
                ("north",): at("2026-11-21T08:00+00:00"),
                ("south",): at("2026-11-20T08:00+00:00"),
            },
        },
    )


# -- several partitions, one worker and two ------------------------------------------------


def spread_messages(names: TopicNames) -> list[Message]:
    """Leads on partitions 1 and 5, visits wherever their keys go, one record misrouted.

    Partition 1: A1 (north) created day 0 08:00, never followed up; K1 (south) created and
    contacted day 1 09:00. Its clock ends at day 1 09:00, past A1's deadline (day 1 08:00):
    A1 breached, overdue, both warnings (day 1 04:00, 07:00).

    Partition 5: A5 (north) created day 0 08:00 too; K5 (south) created and contacted day 1
    07:30, the stage change sent to partition 2 (moved home to 5 by the worker). Its clock
    ends at day 1 07:30: A5's warnings have passed (at risk for both), its deadline has not,
    though the worker's watermark (09:00, partition 1) is past it.

    Visits: vis-a at day 1 07:00, sent twice (one duplicate), vis-b at day 1 07:10.
    """
    a1, k1, a5, k5 = "part-A1-3", "part-K1-12", "part-A5-10", "part-K5-3"
    misrouted_topic, key, value, _ = change(
        names, "c-k5", k5, "contacted", at("2026-11-21T07:30+00:00")
    )
    first_visit = visit(names, "v-a", "vis-a", at("2026-11-21T07:00+00:00"))
    return [
        lead(names, "l-a1", a1, at("2026-11-20T08:00+00:00"), team="north"),
        lead(names, "l-a5", a5, at("2026-11-20T08:00+00:00"), team="north"),
        lead(names, "l-k5", k5, at("2026-11-21T07:30+00:00"), team="south"),
        lead(names, "l-k1", k1, at("2026-11-21T09:00+00:00"), team="south"),
        (misrouted_topic, key, value, 2),
        change(names, "c-k1", k1, "contacted", at("2026-11-21T09:00+00:00")),
        first_visit,
        first_visit,
        visit(names, "v-b", "vis-b", at("2026-11-21T07:10+00:00")),
    ]


SPREAD: Expected = {
    "funnel_stage_entries_total": {
        ("visit", "direct"): 2,
        ("lead", "direct"): 4,
        ("contacted", "direct"): 2,
    },
    "funnel_followups_total": {("south", "true"): 2},  # K1, K5
    "funnel_followup_latency_seconds_count": {("south",): 2},
    "funnel_followup_latency_seconds_sum": {},
    "funnel_followup_sla_breaches_total": {("north",): 1},  # A1
    "funnel_followup_sla_warnings_total": {("north", "4h"): 2, ("north", "1h"): 2},  # A1, A5
    "funnel_followup_clock_skew_total": {},
    "funnel_leads_at_risk": {("north", "4h"): 1, ("north", "1h"): 1},  # A5
    "funnel_leads_awaiting_followup": {("north",): 2},  # A1, A5
    "funnel_leads_overdue": {("north",): 1},  # A1
    OLDEST: {("north",): at("2026-11-20T08:00+00:00")},
}
SPREAD_CONSUMED = {"visits": 3, "leads": 4, "transitions": 2}
SPREAD_APPLIED = {"visits": 2, "leads": 4, "transitions": 2}
SPREAD_DUPLICATE = {"visits": 1}
SPREAD_REROUTED = {"transitions": 1}


def check_spread(names: TopicNames, scrapes: Sequence[Samples]) -> None:
    check(scrapes, SPREAD)
    assert events(scrapes, names, "consumed") == SPREAD_CONSUMED
    assert events(scrapes, names, "applied") == SPREAD_APPLIED
    assert events(scrapes, names, "duplicate") == SPREAD_DUPLICATE
    assert events(scrapes, names, "rerouted") == SPREAD_REROUTED
    assert events(scrapes, names, "rejected") == {}


async def test_leads_on_several_partitions_each_on_its_own_clock(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    names, scrapes = await run_event_scenario(
        broker, topic_prefix, tmp_path, spread_messages(names)
    )
    check_spread(names, scrapes)


async def test_two_workers_sum_to_the_numbers_written_down(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The same messages, read by two workers that share the partitions before any arrives
    (so none is read twice): their series sum to the same hand-written figures."""
    names = TopicNames.from_prefix(topic_prefix)
    messages = spread_messages(names)
    workers = [WorkerProcess(broker, topic_prefix, tmp_path / n) for n in ("a", "b")]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready(timeout=60)
        await wait_split(workers, names.inputs)
        await produce(broker, messages)
        await wait_caught_up(broker, workers[0].app_id, names.inputs)
        scrapes = [worker.metrics() for worker in workers]
    finally:
        for worker in workers:
            worker.stop()
    assert all(s.value("funnel_events_consumed_total") for s in scrapes)  # both took part
    check_spread(names, scrapes)


# -- the wall clock: breaches fired by the worker's timer ----------------------------------


async def wait_for(worker: WorkerProcess, name: str, value: float, **labels: str) -> float:
    """Poll ``/metrics`` until ``name{labels}`` equals ``value``; the wall time it did."""
    deadline = time.monotonic() + 90
    while worker.metrics().value(name, **labels) != value:
        assert time.monotonic() < deadline, worker.tail()
        await asyncio.sleep(0.2)
    return time.time()


# Seconds from producing the wall-clock scenario to L1's deadline: room for the worker to
# read 6 messages first on a loaded machine.
L1_DEADLINE_IN_S = 12


async def test_wall_clock_breach_fired_by_the_timer(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Wall clock, default rules; ``now`` is a whole second taken once the worker is ready.

    - L1 (north), created now - 24 h + 12 s, never followed up: read past both warnings
      (now - 4 h + 12 s, now - 1 h + 12 s), so at risk for both and warned on arrival; 12 s
      later the worker's one-second timer, with no new event, passes its deadline: one
      breach, overdue, no longer at risk.
    - L2 (south), created now - 25 h, never followed up: breached, overdue and warned twice
      on arrival.
    - L3 (south), created now - 2 h, contacted now - 1 h: 3,600 s, within.
    - L4 (north), created now - 26 h, contacted now - 1 h: 25 h = 90,000 s, not within, one
      breach (the follow-up came after the deadline) and both warnings.
    """
    names = TopicNames.from_prefix(topic_prefix)
    worker = WorkerProcess(broker, topic_prefix, tmp_path / "state", clock="wall").start()
    try:
        worker.wait_ready(timeout=60)
        now = float(round(time.time()))
        l1_deadline = now + L1_DEADLINE_IN_S
        await produce(
            broker,
            [
                lead(names, "l-1", "wall-L1", l1_deadline - DAY, team="north"),
                lead(names, "l-2", "wall-L2", now - 25 * HOUR, team="south"),
                lead(names, "l-3", "wall-L3", now - 2 * HOUR, team="south"),
                lead(names, "l-4", "wall-L4", now - 26 * HOUR, team="north"),
                change(names, "c-3", "wall-L3", "contacted", now - HOUR),
                change(names, "c-4", "wall-L4", "contacted", now - HOUR),
            ],
        )
        await wait_for(worker, "funnel_events_consumed_total", 6)
        before = worker.metrics()
        read_before_deadline = time.time() < l1_deadline
        await wait_for(worker, "funnel_followup_sla_breaches_total", 2, team="north")
        after = worker.metrics()
    finally:
        worker.stop()
    unchanged: Expected = {
        "funnel_followups_total": {("north", "false"): 1, ("south", "true"): 1},  # L4, L3
        "funnel_followup_latency_seconds_count": {("north",): 1, ("south",): 1},
        "funnel_followup_latency_seconds_sum": {("north",): 90_000, ("south",): 3_600},
        "funnel_followup_sla_warnings_total": {
            ("north", "4h"): 2,  # L1, L4
            ("north", "1h"): 2,  # L1, L4
            ("south", "4h"): 1,  # L2
            ("south", "1h"): 1,  # L2
        },
        "funnel_followup_clock_skew_total": {},
        "funnel_leads_awaiting_followup": {("north",): 1, ("south",): 1},  # L1, L2
        OLDEST: {("north",): l1_deadline - DAY, ("south",): now - 25 * HOUR},
    }
    # The first scrape was taken before L1's deadline, so its breach came from the timer after.
    assert read_before_deadline, f"6 messages took more than {L1_DEADLINE_IN_S} s to be read"
    check(
        [before],
        {
            **unchanged,
            "funnel_followup_sla_breaches_total": {("north",): 1, ("south",): 1},  # L4, L2
            "funnel_leads_at_risk": {("north", "4h"): 1, ("north", "1h"): 1},  # L1
            "funnel_leads_overdue": {("south",): 1},  # L2
        },
    )
    check(
        [after],
        {
            **unchanged,
            "funnel_followup_sla_breaches_total": {("north",): 2, ("south",): 1},  # + L1
            "funnel_leads_at_risk": {},
            "funnel_leads_overdue": {("north",): 1, ("south",): 1},  # L1, L2
        },
    )
