"""The soak's end checks: the state gauges against the offline recount, and the worker's log.

The recount (``stream.report.recount``, the worker's own core with in-memory stores) runs over
the input topics as the broker holds them, read back partition by partition. Millions of
records do not fit comfortably in a list, so they are streamed to a file first (kind, read
partition, key, value) and the recount reads that file. The gauges compared are the state
gauges of metrics.md, every series that is not 0: the window entries, the open, overdue and
at-risk leads and the oldest open lead per team, the leads in and stuck in each stage.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, get_args

from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped,unused-ignore]

from bench.prom import Prometheus
from schemas import TopicKind
from stream.config.topics import TopicNames
from stream.core.rules import FunnelRules
from stream.kafka.offsets import topic_end_offsets
from stream.observability.scrape import Samples
from stream.report.recount import InputMessage, Recount, recount

Gauges = dict[tuple[str, tuple[tuple[str, str], ...]], float]

STATE_GAUGES = (
    "funnel_window_stage_entries",
    "funnel_leads_awaiting_followup",
    "funnel_leads_overdue",
    "funnel_leads_at_risk",
    "funnel_oldest_awaiting_followup_timestamp_seconds",
    "funnel_leads_in_stage",
    "funnel_leads_stuck",
)
_KINDS: tuple[TopicKind, ...] = get_args(TopicKind)
_HEAD = struct.Struct(">BHii")  # kind, partition read from, key length, value length (-1: None)
_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")


def _key(name: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted((k, v) for k, v in labels.items() if k not in ("job", "instance")))


def scraped_gauges(samples: Samples) -> Gauges:
    """The worker's state gauges from one scrape of ``/metrics`` (non-zero series)."""
    return {
        _key(name, labels): value
        for name in STATE_GAUGES
        for labels, value in samples.series(name)
        if value
    }


async def prometheus_gauges(prometheus: Prometheus) -> Gauges:
    """The same gauges as Prometheus last scraped them (non-zero series)."""
    names = "|".join(STATE_GAUGES)
    rows = await prometheus.query(f'{{__name__=~"{names}",job="funnel"}}')
    out: Gauges = {}
    for labels, value in rows:
        name = labels.pop("__name__")
        if value:
            out[_key(name, labels)] = value
    return out


def expected_gauges(result: Recount) -> Gauges:
    """The same gauges from a recount."""
    funnel = result.funnel
    out: Gauges = {}

    def put(name: str, value: float, **labels: str) -> None:
        if value:
            out[_key(name, labels)] = value

    for (stage, window, period), n in funnel.window_entries().items():
        put("funnel_window_stage_entries", n, stage=stage, window=window, period=period)
    for team, g in funnel.followup_gauges().items():
        put("funnel_leads_awaiting_followup", g.awaiting, team=team)
        put("funnel_leads_overdue", g.overdue, team=team)
        put(
            "funnel_oldest_awaiting_followup_timestamp_seconds",
            g.oldest_clock_start or 0,
            team=team,
        )
        for before, n in g.at_risk.items():
            put("funnel_leads_at_risk", n, team=team, before=before)
    for stage, (in_stage, stuck) in funnel.stage_gauges().items():
        put("funnel_leads_in_stage", in_stage, stage=stage)
        put("funnel_leads_stuck", stuck, stage=stage)
    return out


def differences(got: Gauges, wanted: Gauges, limit: int = 10) -> list[str]:
    """Up to ``limit`` series whose values differ (``name{labels}: got X, recount Y``)."""
    out = []
    for key in sorted(set(got) | set(wanted)):
        if got.get(key, 0.0) != wanted.get(key, 0.0):
            name, labels = key
            text = ",".join(f'{k}="{v}"' for k, v in labels)
            out.append(f"{name}{{{text}}}: got {got.get(key, 0.0)}, recount {wanted.get(key, 0.0)}")
    return out[:limit]


async def dump_inputs(bootstrap: str, names: TopicNames, path: Path) -> int:
    """Write every record of the input topics to ``path``, per topic in partition order."""
    written = 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=[bootstrap], group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        with path.open("wb") as out:
            for topic, kind in names.kinds.items():
                ends = await topic_end_offsets(bootstrap, topic, timeout=120)
                for partition, end in ends.items():
                    written += await _dump_partition(
                        consumer, TopicPartition(topic, partition), end, _KINDS.index(kind), out
                    )
    finally:
        await consumer.stop()
    return written


async def _dump_partition(
    consumer: AIOKafkaConsumer, tp: TopicPartition, end: int, kind: int, out: BinaryIO
) -> int:
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    written = 0
    while await consumer.position(tp) < end:
        batches = await consumer.getmany(tp, timeout_ms=2000, max_records=10_000)
        for record in batches.get(tp, []):
            if record.offset >= end:
                continue
            key, value = record.key, record.value
            out.write(
                _HEAD.pack(
                    kind,
                    tp.partition,
                    -1 if key is None else len(key),
                    -1 if value is None else len(value),
                )
            )
            out.write((key or b"") + (value or b""))
            written += 1
    return written


def read_dump(path: Path, partitions: int) -> Iterator[InputMessage]:
    """The records of a :func:`dump_inputs` file, each on its key's home partition."""
    with path.open("rb") as source:
        while head := source.read(_HEAD.size):
            kind, partition, key_len, value_len = _HEAD.unpack(head)
            key = source.read(key_len) if key_len >= 0 else None
            value = source.read(value_len) if value_len >= 0 else None
            yield InputMessage.at_home(_KINDS[kind], partition, key, value, partitions)


def recount_dump(path: Path, partitions: int, rules: FunnelRules | None = None) -> Recount:
    """The offline recount (event clock) over a :func:`dump_inputs` file."""
    return recount(read_dump(path, partitions), rules or FunnelRules())


def log_problems(lines: Iterable[str], limit: int = 5) -> tuple[int, list[str]]:
    """How many lines report an error (ERROR, CRITICAL, a traceback) and the first few."""
    found = [line.rstrip() for line in lines if _PROBLEM.search(line)]
    return len(found), found[:limit]
