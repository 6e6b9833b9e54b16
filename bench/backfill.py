"""``funnel report`` over a busy month: its events/s and peak RSS (the ``report`` phase).

``REPORT_EVENTS`` generated events (the generator's realistic mix: visits, leads and their
stage changes, with its re-sent copies, late and malformed messages) over a 30-day backfill
are produced to the topics of prefix ``bench-report.`` with librdkafka (Kafka's murmur2
partitioner: every record on its key's home partition). Then ``funnel report --format json``
runs as a child over that month; its wall time from spawn to exit (start-up, reading every
message, the report) and its peak memory (RSS summed over its processes, sampled) are the
figures. The report must count every message it read. Then the same topics are read once more
by the report's own reader (``stream.kafka.scan.scan_topic``, librdkafka, in as many processes
as the report) doing nothing with the records: the most the broker lets the report reach.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from confluent_kafka import Producer

from bench.context import Context, Results
from bench.kafka import Offsets, create_topics, end_offsets
from bench.procs import Child, ChildFailed, _clean_env, tree_memory_peaks
from stream.config.topics import TopicNames
from stream.generate import OutMessage, generate_messages
from stream.kafka.scan import scan_topic
from stream.report.source import home_ranges

log = logging.getLogger(__name__)

PREFIX = "bench-report."
REPORT_EVENTS = 10_000_000
QUICK_EVENTS = 200_000  # --quick
DAYS = 30
_END = datetime(2026, 11, 1, tzinfo=UTC)  # the month ends here: every event is in the past
_PRODUCER = {
    "partitioner": "murmur2_random",  # Kafka's default partitioner for keyed records
    "linger.ms": 50,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "acks": 1,
    "enable.idempotence": False,
}


def _produce(bootstrap: str, messages: Iterable[OutMessage]) -> int:
    """Send every message with librdkafka; the count sent (end offsets check delivery)."""
    producer = Producer({"bootstrap.servers": bootstrap, **_PRODUCER})
    sent = 0
    for m in messages:
        while True:
            try:
                producer.produce(m.topic, m.value, m.key)
                break
            except BufferError:  # the local queue is full: let librdkafka send some
                producer.poll(0.05)
        sent += 1
        if sent % 100_000 == 0:
            producer.poll(0)
            if sent % 1_000_000 == 0:
                log.info("report: produced %s", f"{sent:,}")
    if producer.flush(120) > 0:
        raise ChildFailed("messages still unsent two minutes after the last was produced")
    return sent


def _read_only(bootstrap: str, ends: Offsets) -> int:
    """Read every record before ``ends`` as the report does (one process per range of
    partitions, ``stream.report.source.home_ranges``), and only count them."""
    topics = sorted({topic for topic, _ in ends})
    partitions = 1 + max(partition for _, partition in ends)
    ranges = home_ranges(partitions, len(os.sched_getaffinity(0)))
    context = multiprocessing.get_context("fork")
    pool = context.Pool(len(ranges))
    try:
        counts = pool.starmap(
            _count_records,
            [(bootstrap, topics, ends, homes.start, homes.stop) for homes in ranges],
        )
    except BaseException:
        pool.terminate()
        raise
    # The workers leave on the queue's end marker. Not ``with Pool``: its exit stops them
    # with SIGTERM, and a worker is a fork of the harness, whose SIGTERM handler does not
    # end a process: an idle worker stayed alive and the run hung in the pool's join.
    pool.close()
    pool.join()
    return sum(counts)


def _count_records(bootstrap: str, topics: list[str], ends: Offsets, start: int, stop: int) -> int:
    read = 0
    for topic in topics:
        partitions = {p: end for (t, p), end in ends.items() if t == topic and start <= p < stop}
        for _, records in scan_topic([bootstrap], topic, partitions):
            read += len(records)
    return read


def _report_child(ctx: Context, output: str) -> Child:
    start = (_END.timestamp() - DAYS * 86400) // 86400 * 86400
    first = datetime.fromtimestamp(start, UTC).date().isoformat()
    command = [sys.executable, "-m", "stream.cli", "report", "--from", first]
    command += ["--to", _END.date().isoformat(), "--format", "json", "--output", output]
    env = _clean_env(
        {"FUNNEL_BROKER": ctx.bootstrap, "FUNNEL_TOPIC_PREFIX": PREFIX, "FUNNEL_PARTITIONS": "8"}
    )
    return Child("funnel report", command, ctx.dir("logs") / "report.log", env)


def _wait(pid: int) -> tuple[int, float]:
    """The exit status and CPU seconds (its processes' included) of child ``pid``, once it
    exits."""
    _, status, usage = os.wait4(pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime


async def run_report(ctx: Context) -> Results:
    """The ``report`` phase: produce a month, then time ``funnel report`` over it."""
    names = TopicNames.from_prefix(PREFIX)
    await create_topics(ctx.bootstrap, names)
    count = QUICK_EVENTS if ctx.events <= 50_000 else REPORT_EVENTS
    end = _END.timestamp()
    messages = generate_messages(
        seed=ctx.seed, start=end - DAYS * 86400, end=end, count=count, topics=names
    )
    started = time.monotonic()
    sent = await asyncio.to_thread(_produce, ctx.bootstrap, messages)
    log.info("report: produced %s in %.0f s", f"{sent:,}", time.monotonic() - started)
    ends = await end_offsets(ctx.bootstrap, names.inputs)
    stored = sum(ends.values())
    if stored != sent:
        raise ChildFailed(f"produced {sent:,} messages but the topics hold {stored:,}")
    output = str(ctx.dir("report") / "report.json")
    child = ctx.children.start(_report_child(ctx, output))
    exited = threading.Event()
    sampler = asyncio.create_task(asyncio.to_thread(tree_memory_peaks, child.pid, exited.is_set))
    try:
        code, cpu_s = await asyncio.to_thread(_wait, child.pid)
    finally:
        exited.set()
        child.stop()
    peak_mb, peak_pss_mb, largest_mb = await sampler
    seconds = time.monotonic() - child.started_at
    if code != 0:
        raise ChildFailed(f"funnel report exited with status {code} (see {child.log_path})")
    with open(output, encoding="utf-8") as file:
        report = json.load(file)
    counted = report["entries"]["visit"] + report["rejected_messages"]
    if not 0 < counted <= sent:
        raise ChildFailed(f"the report counts {counted:,} visits and rejections of {sent:,}")
    rate = sent / seconds
    started = time.monotonic()
    read = await asyncio.to_thread(_read_only, ctx.bootstrap, ends)
    read_seconds = time.monotonic() - started
    if read != sent:
        raise ChildFailed(f"the plain read got {read:,} of {sent:,} messages")
    log.info("report: a plain read of the same topics took %.1f s", read_seconds)
    log.info(
        "report: %s events in %.1f s (%.0f /s; %.1f CPU s), peak RSS %.0f MB",
        f"{sent:,}",
        seconds,
        rate,
        cpu_s,
        peak_mb,
    )
    return {
        "report_events": sent,
        "report_seconds": seconds,
        "report_events_per_s": rate,
        # Summed over the report's processes (it reads in one per CPU), sampled every 50 ms;
        # the PSS counts the pages they share once; the largest single process's own peak.
        "report_peak_rss_mb": peak_mb,
        "report_peak_pss_mb": peak_pss_mb,
        "report_largest_process_rss_mb": largest_mb,
        # On a shared machine the wall time includes waiting for a core: the CPU time
        # says what the report itself costs.
        "report_cpu_seconds": cpu_s,
        "report_cpu_events_per_s": sent / cpu_s if cpu_s > 0 else None,
        # The broker's ceiling: the report's reader alone, records read and dropped.
        "report_read_only_events_per_s": sent / read_seconds,
    }
