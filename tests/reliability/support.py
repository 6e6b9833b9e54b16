"""Shared helpers of the reliability and security tests: events, traffic, expectations, processes.

The expectation is always the offline recount (``stream.report.recount``): the same core over the
messages read back from the input topics, in partition order. Scenarios end with one closing
event per partition and topic at the same instant, so that every partition's event clock (and
so every worker's) ends at the same place.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rocksdict
from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer

from schemas import Rejection, TopicKind, classify
from stream.config.topics import TopicNames
from stream.core.leads import LeadState
from stream.core.rules import FunnelRules
from stream.generate import generate_messages
from stream.kafka.admin import ensure_topics
from stream.kafka.offsets import read_topic
from stream.kafka.partitioner import home_partition
from stream.observability.scrape import Samples
from stream.report.recount import InputMessage, Recount, recount
from tests.harness import WorkerProcess, all_series, free_port, owned, produce, wait_caught_up

__all__ = [
    "CLOSE",
    "END",
    "PARTITIONS",
    "START",
    "Message",
    "WorkerProcess",
    "all_series",
    "free_port",
    "produce",
    "wait_caught_up",
]

PARTITIONS = 8
START = 1_795_000_000.0  # 2026-11-18T10:13:20Z, in the past so nothing is "future"
END = START + 3 * 86400.0
CLOSE = END + 3600.0

Message = tuple[str, bytes | None, bytes | None, int | None]


def at(t: float) -> str:
    """``t`` (epoch seconds) as an RFC 3339 UTC timestamp with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def visit(names: TopicNames, eid: str, visitor_id: str, t: float, **extra: Any) -> Message:
    """A ``visit`` message (source ``direct`` unless given)."""
    body = {"event_id": eid, "type": "visit", "occurred_at": at(t), "visitor_id": visitor_id}
    body.update({"source": "direct", **extra})
    return (names.visits, visitor_id.encode(), _json(body), None)


def lead(names: TopicNames, eid: str, lead_id: str, t: float, **extra: Any) -> Message:
    """A ``lead_created`` message (source ``direct`` unless given)."""
    body = {"event_id": eid, "type": "lead_created", "occurred_at": at(t), "lead_id": lead_id}
    body.update({"source": "direct", **extra})
    return (names.leads, lead_id.encode(), _json(body), None)


def change(names: TopicNames, eid: str, lead_id: str, to: str, t: float, **extra: Any) -> Message:
    """A ``stage_changed`` message."""
    body = {
        "event_id": eid,
        "type": "stage_changed",
        "occurred_at": at(t),
        "lead_id": lead_id,
        "to_stage": to,
        **extra,
    }
    return (names.transitions, lead_id.encode(), _json(body), None)


def key_at_home(prefix: str, partition: int) -> str:
    """The first ``<prefix>-<n>`` whose home partition (Kafka's default) is ``partition``."""
    return next(
        key
        for key in (f"{prefix}-{n}" for n in itertools.count())
        if home_partition(key.encode(), PARTITIONS) == partition
    )


def closing_events(names: TopicNames, when: float = CLOSE) -> list[Message]:
    """A visit, a lead and its follow-up on every partition, all at ``when``."""
    out: list[Message] = []
    for p in range(PARTITIONS):
        vid, lid = key_at_home(f"closing-visitor-{p}", p), key_at_home(f"closing-lead-{p}", p)
        for topic, key, value, _ in (
            visit(names, f"cv{p}", vid, when),
            lead(names, f"cl{p}", lid, when),
            change(names, f"cc{p}", lid, "contacted", when),
        ):
            out.append((topic, key, value, p))
    return out


def traffic(
    names: TopicNames, count: int, seed: int, start: float = START, end: float = END
) -> list[Message]:
    """About ``count`` generated messages (with the generator's own noise) in [start, end]."""
    msgs = generate_messages(seed=seed, start=start, end=end, count=count, topics=names)
    return [(m.topic, m.key, m.value, None) for m in msgs]


async def produce_paced(bootstrap: str, messages: Sequence[Message], rate: float) -> int:
    """Send ``messages`` in order at about ``rate`` messages per second; returns how many."""
    await ensure_topics(bootstrap, {topic: PARTITIONS for topic, *_ in messages})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    chunk = max(1, int(rate / 10))
    started = time.monotonic()
    try:
        for i in range(0, len(messages), chunk):
            futures = [
                await producer.send(topic, value=value, key=key, partition=partition)
                for topic, key, value, partition in messages[i : i + chunk]
            ]
            await asyncio.gather(*futures)
            ahead = started + (i + chunk) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
    finally:
        await producer.stop()
    return len(messages)


# -- reading back ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One input message with its place in the topic."""

    topic: str
    kind: TopicKind
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


async def read_records(bootstrap: str, names: TopicNames) -> list[Record]:
    """Every message of the input topics, per topic in partition order (as workers see them)."""
    out: list[Record] = []
    for topic, kind in names.kinds.items():
        for r in await read_topic(bootstrap, topic, timeout=60):
            out.append(Record(topic, kind, r.partition, r.offset, r.key, r.value))
    return out


def as_inputs(records: Iterable[Record]) -> list[InputMessage]:
    """The records as the recount takes them: each on its key's home partition."""
    return [InputMessage.at_home(r.kind, r.partition, r.key, r.value, PARTITIONS) for r in records]


def rejections(records: Iterable[Record], stages: Iterable[str]) -> set[tuple[str, int, int, str]]:
    """(topic, partition, offset, reason) of every record the worker must dead-letter."""
    allowed = frozenset(stages)
    out: set[tuple[str, int, int, str]] = set()
    for r in records:
        result = classify(r.kind, r.key, r.value, stages=allowed)
        if isinstance(result, Rejection):
            out.add((r.topic, r.partition, r.offset, result.reason))
    return out


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-letter message: its headers, key and value."""

    headers: dict[str, bytes]
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> tuple[str, int, int, str]:
        h = self.headers
        return (
            h["source_topic"].decode(),
            int(h["source_partition"]),
            int(h["source_offset"]),
            h["reason"].decode(),
        )


async def dead_letters(bootstrap: str, names: TopicNames) -> list[DeadLetter]:
    """Every message of the dead-letter topic."""
    records = await read_topic(bootstrap, names.dead_letter, timeout=60)
    return [DeadLetter(dict(r.headers), r.key, r.value) for r in records]


# -- expectations ------------------------------------------------------------------------------


def gauges(*scrapes: Samples) -> dict[tuple[str, ...], float]:
    """The funnel's state gauges summed over workers (non-zero series only)."""
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for samples in scrapes:
        for labels, v in samples.series("funnel_window_stage_entries"):
            out[("window", labels["stage"], labels["window"], labels["period"])] += v
        for name in ("funnel_leads_awaiting_followup", "funnel_leads_overdue"):
            for labels, v in samples.series(name):
                out[(name, labels["team"])] += v
        for labels, v in samples.series("funnel_leads_at_risk"):
            out[("funnel_leads_at_risk", labels["team"], labels["before"])] += v
        for name in ("funnel_leads_in_stage", "funnel_leads_stuck"):
            for labels, v in samples.series(name):
                out[(name, labels["stage"])] += v
    return {k: v for k, v in out.items() if v}


def oldest_open(*scrapes: Samples) -> dict[str, float]:
    """The oldest open lead's clock start per team: a minimum over workers."""
    out: dict[str, float] = {}
    for samples in scrapes:
        for labels, v in samples.series("funnel_oldest_awaiting_followup_timestamp_seconds"):
            if v:
                team = labels["team"]
                out[team] = min(out.get(team, v), v)
    return out


def expected_gauges(result: Recount) -> dict[tuple[str, ...], float]:
    """The same gauges from a recount."""
    funnel = result.funnel
    out: dict[tuple[str, ...], float] = {}
    for (stage, window, period), n in funnel.window_entries().items():
        if n:
            out[("window", stage, window, period)] = n
    for team, g in funnel.followup_gauges().items():
        for name, v in (
            ("funnel_leads_awaiting_followup", g.awaiting),
            ("funnel_leads_overdue", g.overdue),
        ):
            if v:
                out[(name, team)] = v
        for before, n in g.at_risk.items():
            out[("funnel_leads_at_risk", team, before)] = n
    for stage, (in_stage, stuck) in funnel.stage_gauges().items():
        for name, v in (("funnel_leads_in_stage", in_stage), ("funnel_leads_stuck", stuck)):
            if v:
                out[(name, stage)] = v
    return out


def expected_oldest(result: Recount) -> dict[str, float]:
    """The oldest open lead per team from a recount."""
    return {
        team: g.oldest_clock_start
        for team, g in result.funnel.followup_gauges().items()
        if g.oldest_clock_start
    }


def stored_lead_states(data_dir: Path, partitions: Iterable[int]) -> dict[str, LeadState]:
    """The lead states a stopped worker's RocksDB holds for ``partitions``."""
    out: dict[str, LeadState] = {}
    for p in partitions:
        path = data_dir / "v1" / "tables" / f"lead_states-{p}.db"
        db = rocksdict.Rdict(
            str(path),
            options=rocksdict.Options(raw_mode=True),
            access_type=rocksdict.AccessType.read_only(),
        )
        try:
            for key, value in db.items():
                assert isinstance(key, bytes), key  # raw mode
                if not key.startswith(b"__faust"):  # the store's changelog offset
                    out[key.decode()] = LeadState.decode(value)
        finally:
            db.close()
    return out


def lead_state_differences(result: Recount, stored: dict[str, LeadState]) -> list[str]:
    """The leads whose stored creation or stage entries (what the gauges derive from) differ
    from the recount's, with the ids of the events applied to one and not the other."""
    out: list[str] = []
    for key, raw in result.funnel.leads.items():
        lead_id = key if isinstance(key, str) else key.decode()
        want, got = LeadState.decode(raw), stored.get(lead_id)
        if got is None:
            out.append(f"{lead_id}: not stored")
        elif (got.created_at, got.entries) != (want.created_at, want.entries):
            missing, extra = set(want.seen) - set(got.seen), set(got.seen) - set(want.seen)
            out.append(
                f"{lead_id} (partition {want.partition}): entries {got.entries} against "
                f"{want.entries}; events missing {sorted(missing)}, extra {sorted(extra)}"
            )
    return out


def owners_lead_differences(
    result: Recount, owners: Sequence[tuple[WorkerProcess, Samples]], names: TopicNames
) -> list[str]:
    """``lead_state_differences`` over the lead states the stopped ``owners`` stored for the
    lead partitions their last scrape exported: where a gauge mismatch comes from (the stored
    states, or, when this is empty, a worker's views)."""
    stored: dict[str, LeadState] = {}
    for worker, scrape in owners:
        leads = {p for _, p in owned(scrape, [names.leads])}
        stored.update(stored_lead_states(worker.data_dir, leads))
    return lead_state_differences(result, stored)


def do_recount(records: Iterable[Record], rules: FunnelRules | None = None) -> Recount:
    """The offline recount of ``records`` (default rules)."""
    return recount(as_inputs(records), rules or FunnelRules())


def counters(names: TopicNames, *scrapes: Samples) -> dict[str, float]:
    """Counters that do not depend on arrival order, summed over workers (non-zero only).

    Breaches are left out: a follow-up delivered after later events of its partition may be
    preceded by a breach (docs/semantics.md, "The event clock").
    """
    kinds = names.kinds
    out: Counter[str] = Counter()
    for s in scrapes:
        for name, labels, v in all_series(s):
            if name in ("funnel_stage_entries_total", "funnel_stage_reentries_total"):
                out[f"{name}|{labels['stage']}"] += v
            elif name == "funnel_followups_total":
                out[f"{name}|{labels['team']}|{labels['within_sla']}"] += v
            elif name == "funnel_followup_clock_skew_total":
                out[f"{name}|{labels['team']}"] += v
            elif name == "funnel_events_rejected_total":
                out[f"{name}|{kinds[labels['topic']]}|{labels['reason']}"] += v
            elif name.startswith("funnel_events_") and name not in (
                "funnel_events_late_total",
                "funnel_events_rerouted_total",  # depends on the producers' partitioner
            ):
                out[f"{name}|{kinds[labels['topic']]}"] += v
    return {k: v for k, v in out.items() if v}


def expected_counters(result: Recount) -> dict[str, float]:
    """The same counters from a recount."""
    out: Counter[str] = Counter()
    for (kind, outcome), n in result.outcomes.items():
        out[f"funnel_events_consumed_total|{kind}"] += n
        if outcome in ("applied", "duplicate"):
            out[f"funnel_events_{outcome}_total|{kind}"] += n
        else:
            out[f"funnel_events_rejected_total|{kind}|{outcome}"] += n
    for (stage, _source), n in result.entries.items():
        out[f"funnel_stage_entries_total|{stage}"] += n
    for stage, n in result.reentries.items():
        out[f"funnel_stage_reentries_total|{stage}"] += n
    for f in result.followups:
        out[f"funnel_followups_total|{f.team}|{'true' if f.within_sla else 'false'}"] += 1
        if f.clock_skew:
            out[f"funnel_followup_clock_skew_total|{f.team}"] += 1
    return {k: v for k, v in out.items() if v}


# -- processes ---------------------------------------------------------------------------------


def consumed(worker: WorkerProcess) -> float:
    """The worker's consumed counter, 0 if it does not answer."""
    try:
        return worker.metrics().value("funnel_events_consumed_total")
    except OSError:
        return 0.0


async def wait_consumed(worker: WorkerProcess, at_least: float, timeout: float = 120) -> None:
    """Wait until the worker has consumed ``at_least`` messages."""
    deadline = time.monotonic() + timeout
    while consumed(worker) < at_least:
        assert time.monotonic() < deadline, worker.tail()
        await asyncio.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """CPU time of process ``pid``'s threads, in seconds, to the nanosecond.

    The scheduler's own count per thread (``/proc/<pid>/task/<tid>/schedstat``, first
    field), summed. ``/proc/<pid>/stat`` counts in clock ticks of 10 ms, sampled: a tenth of
    a phase that takes 0.1 s of CPU.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
            continue
    return total / 1e9


# The largest message the reliability tests produce (oversized values included).
BIG = 8 << 20


async def send_all(bootstrap: str, messages: list[Message]) -> None:
    """Produce ``messages`` in order, allowing messages of several megabytes."""
    await ensure_topics(bootstrap, {topic: PARTITIONS for topic, *_ in messages})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=BIG, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for topic, key, value, partition in messages:
            futures.append(await producer.send(topic, value=value, key=key, partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def send_at_once(bootstrap: str, messages: list[Message]) -> None:
    """Produce ``messages`` in order with librdkafka (Kafka's murmur2 partitioner for keyed
    records without a partition), tens of thousands in a fraction of a second."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "partitioner": "murmur2_random",
            "message.max.bytes": BIG,
            "linger.ms": 5,
            "enable.idempotence": False,
        }
    )
    for topic, key, value, partition in messages:
        where = {} if partition is None else {"partition": partition}
        while True:
            try:
                producer.produce(topic, value, key, **where)
                break
            except BufferError:  # the local queue is full: let librdkafka send some
                producer.poll(0.05)
    assert producer.flush(60) == 0, "messages still unsent a minute after the last"


# How long the idle worker's own CPU use is sampled before a rate is measured.
IDLE_SAMPLE_S = 1.0


async def cpu_rate(pid: int, seconds: float = IDLE_SAMPLE_S) -> float:
    """CPU seconds per second process ``pid`` uses over the next ``seconds``."""
    started, cpu = time.monotonic(), cpu_seconds(pid)
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - cpu) / (time.monotonic() - started)


async def rate(worker: WorkerProcess, send: list[Message], bootstrap: str) -> float:
    """Messages the worker consumes per second of its own CPU time, working through ``send``.

    The worker must be caught up (idle). Its idle CPU use is sampled first; then ``send`` is
    produced to the end and the clock of CPU time runs until the worker has consumed every
    message, less what it would have spent idle over that time. Idle use is sampled again
    once the worker is done, and the lower of the two samples is taken: a sample that caught
    a timer's or a commit's work overstates it, and subtracting too much made a phase of
    0.1 s of CPU look half as cheap again as it was (103,107 against about 68,000 messages
    per CPU second for the same normal traffic, failing a comparison). CPU time is the worker's
    own cost, whatever else the machine runs (the producer, the broker, other tests), and
    nothing here pauses the producer: the polls come after it finished. The messages are
    produced with librdkafka (``send_at_once``), so that every phase reaches the worker as a
    backlog it reads in full fetches, as a busy worker does: a slower producer made the
    worker keep pace with its trickle, in more and smaller fetches for a phase of more bytes
    (a poison storm's), each fetch with its fixed cost. A measurement that consumed nothing,
    or more than was sent, or used no CPU, fails instead of returning a rate that makes a
    comparison vacuous.
    """
    assert worker.process is not None
    pid = worker.process.pid
    before = consumed(worker)
    idle_rate = await cpu_rate(pid)
    assert consumed(worker) == before, "the worker was not idle before the measurement"
    started, cpu_before = time.monotonic(), cpu_seconds(pid)
    await ensure_topics(bootstrap, {topic: PARTITIONS for topic, *_ in send})
    await asyncio.to_thread(send_at_once, bootstrap, send)
    target = before + len(send)
    deadline = time.monotonic() + 120
    while (now := consumed(worker)) < target:
        assert time.monotonic() < deadline, (now, target, worker.tail())
        await asyncio.sleep(0.1)
    cpu, seconds = cpu_seconds(pid) - cpu_before, time.monotonic() - started
    idle_rate = min(idle_rate, await cpu_rate(pid))
    busy = cpu - idle_rate * seconds
    assert now == target, f"consumed {now - before:.0f} messages, {len(send)} were sent"
    assert busy > 0, f"no CPU time measured for {len(send)} messages (idle {idle_rate:.3f}/s)"
    return len(send) / busy


async def best_rate(
    worker: WorkerProcess, rounds: Sequence[list[Message]], bootstrap: str
) -> float:
    """The best of ``rate`` over ``rounds``: traffic of one kind, measured once per round.

    Another process on the machine (the broker, the producer, other tests) only ever slows a
    measurement, and on a 2-core machine the same phase's rate moved by a quarter between
    runs, more than the margin of the tests that compare two rates (docs/reliability.md).
    Each round is its own messages (a round sent again would be duplicates, a cheaper path).
    """
    assert rounds, "no round to measure"
    return max([await rate(worker, messages, bootstrap) for messages in rounds])
