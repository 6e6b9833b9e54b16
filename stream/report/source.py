"""Reading the input topics back for a report or a measurement (the only I/O of the package).

The records are applied as they arrive (``Collector``), per topic in partition and offset
order, each on its key's home partition: nothing holds the topics in memory.

A report reads the visits topic in several processes at once (``[report] processes``, by
default one per CPU; this one reads the first range): each reads the visits of a contiguous
range of home partitions and sends back what they add to the facts (``VisitFacts``: first
entries, the latest time, the messages). Meanwhile this process, once its own visits are
read, reads the leads and transitions topics whole, as one pass does. A visit changes nothing
but its home partition's duplicate detection, the entries and the clock's watermark, so a
process owning whole home partitions decides exactly what one pass does, and the leads are
read in one process in one pass's order. A visit stored away from its home partition (a
producer with another partitioner) would belong to another process: the read then starts
again in one process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from schemas import TopicKind
from stream.config.funnel_rules import rules_from_settings
from stream.config.settings import Settings
from stream.kafka.admin import bootstrap_list, wait_for_broker
from stream.kafka.offsets import topic_end_offsets
from stream.kafka.partitioner import home_partition
from stream.kafka.scan import librdkafka_config, scan_topic
from stream.kafka.security import client_kwargs
from stream.report.entries import Entries
from stream.report.facts import Collector, Facts, VisitFacts

log = logging.getLogger(__name__)

OFFSETS_TIMEOUT_S = 60.0  # asking for the end offsets of one topic, at most

Ends = dict[str, dict[int, int]]  # topic -> partition -> end offset


class _AwayFromHome(Exception):
    """A record is stored on a partition of another process's range than its home's."""


async def _end_offsets(settings: Settings, broker_wait: float) -> Ends:
    """Each input topic's end offsets (the read stops there), once Kafka answers.

    Raises ``BrokerUnavailable`` (one line naming the servers) if Kafka does not answer
    within ``broker_wait`` seconds.
    """
    kwargs = client_kwargs(settings.kafka)
    await wait_for_broker(settings.bootstrap_servers, broker_wait, **kwargs)
    return {
        topic: await topic_end_offsets(
            settings.bootstrap_servers, topic, timeout=OFFSETS_TIMEOUT_S, client_kwargs=kwargs
        )
        for topic in settings.topics.kinds
    }


def read_facts(
    settings: Settings, *, now: float | None = None, broker_wait: float | None = None
) -> Facts:
    """Read the input topics and recount them with the configured rules and clock.

    Waits ``broker_wait`` seconds for Kafka to answer (``kafka.connect_timeout`` if None).
    """
    wait_s = settings.kafka.connect_timeout if broker_wait is None else broker_wait
    ends = asyncio.run(_end_offsets(settings, wait_s))
    wall = time.time() if now is None else now
    ranges = home_ranges(settings.partitions, report_processes(settings))
    # A topic grown past ``partitions`` has partitions no range owns: one process reads all.
    grown = any(p >= settings.partitions for partitions in ends.values() for p in partitions)
    if len(ranges) > 1 and not grown:
        facts = _read_in_processes(settings, ends, wall, ranges)
        if facts is not None:
            return facts
        log.info("records stored away from their home partition: reading in one process")
    collector = _collector(settings, wall)
    _read(collector, settings, ends, settings.topics.kinds, None)
    return collector.finish()


def report_processes(settings: Settings) -> int:
    """How many processes read the visits: ``[report] processes``, else one per CPU."""
    return settings.report.processes or len(os.sched_getaffinity(0))


def home_ranges(partitions: int, processes: int) -> list[range]:
    """The home partitions split into at most ``processes`` contiguous ranges, in order."""
    n = max(1, min(processes, partitions))
    bounds = [partitions * i // n for i in range(n + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(n)]


def _collector(settings: Settings, wall: float) -> Collector:
    return Collector(rules_from_settings(settings), clock_mode=settings.clock, now=wall)


def _topics(settings: Settings, *, visits: bool) -> dict[str, TopicKind]:
    """The visits topic (``visits=True``), or the others, with their kinds."""
    kinds = settings.topics.kinds.items()
    return {topic: kind for topic, kind in kinds if (kind == "visits") == visits}


def _read(
    collector: Collector,
    settings: Settings,
    ends: Ends,
    topics: Mapping[str, TopicKind],
    homes: range | None,
) -> None:
    """Apply every record of ``topics`` on the partitions of ``homes`` (None: every
    partition) to ``collector``.

    A record read from ``homes`` whose home partition is outside it raises ``_AwayFromHome``.
    """
    add, partitions = collector.add, settings.partitions
    servers = bootstrap_list(settings.bootstrap_servers)
    config = librdkafka_config(settings.kafka)
    for topic, kind in topics.items():
        mine = {p: end for p, end in ends[topic].items() if homes is None or p in homes}
        read = 0
        for partition, records in scan_topic(servers, topic, mine, config=config):
            read += len(records)
            for key, value in records:
                # Applied where the worker applies it: its key's home partition.
                home = partition if key is None else home_partition(key, partitions)
                if homes is not None and home not in homes:
                    raise _AwayFromHome
                add(kind, home, key, value)
        collector.read_all(kind)
        log.debug("read topic=%s partitions=%s messages=%d", topic, sorted(mine), read)


def _read_in_processes(
    settings: Settings, ends: Ends, wall: float, ranges: Sequence[range]
) -> Facts | None:
    """The facts, the visits read by one process per range of home partitions (this one
    reads the first, then the other topics whole); None when a visit is stored away from
    its home's range."""
    context = multiprocessing.get_context("fork")
    gc.freeze()  # the parent's objects stay shared with the children, not copied on write
    children: list[tuple[Any, Connection]] = []
    receiving = ThreadPoolExecutor(len(ranges) - 1, thread_name_prefix="report-receive")
    try:
        for homes in ranges[1:]:
            receive, send = context.Pipe(duplex=False)
            child = context.Process(
                target=_child, args=(send, settings, ends, wall, homes), daemon=True
            )
            child.start()
            send.close()
            children.append((child, receive))
        # Received as they come, so that a process ends as soon as it has read its visits.
        parts = [receiving.submit(_receive, receive) for _, receive in children]
        collector = _collector(settings, wall)
        try:
            visits = _topics(settings, visits=True)
            _read(collector, settings, ends, visits, ranges[0])
            _read(collector, settings, ends, _topics(settings, visits=False), None)
        except _AwayFromHome:
            return None
        for received in parts:
            part = received.result()
            if part is None:
                return None
            collector.add_visit_facts(part)
        return collector.finish()
    finally:
        gc.unfreeze()
        for child, _ in children:
            if child.is_alive():
                child.terminate()
            child.join()
        receiving.shutdown(wait=True)  # the pipes' far ends are closed: nothing blocks
        for _, receive in children:
            receive.close()


def _send(send: Connection, part: VisitFacts) -> None:
    """Send ``part`` to the parent a sorted chunk of entry times at a time (``_receive``)."""
    send.send(("visits", (part.watermark, part.messages, part.rejected)))
    for stage, source, chunks in part.entries.sorted_parts():
        for chunk in chunks:
            send.send(("entries", (stage, source, [chunk])))
    send.send(("end", None))


def _receive(connection: Connection) -> VisitFacts | None:
    """The facts a report process sent (``_send``); None if it met a visit away from home."""
    try:
        status, payload = connection.recv()
        if status == "error":
            raise payload
        if status == "away":
            return None
        watermark, messages, rejected = payload
        entries = Entries()
        while True:
            status, payload = connection.recv()
            if status != "entries":
                return VisitFacts(entries, watermark, messages, rejected)
            entries.add_sorted(*payload)
    except EOFError:
        raise RuntimeError("a report process ended before sending its facts") from None


def _child(
    send: Connection, settings: Settings, ends: Mapping[str, dict[int, int]], wall: float,
    homes: range,
) -> None:  # fmt: skip
    """A report process: what the visits of ``homes`` add to the facts, sent to the parent."""
    try:
        collector = _collector(settings, wall)
        _read(collector, settings, dict(ends), _topics(settings, visits=True), homes)
        part = collector.visit_facts()
    except _AwayFromHome:
        send.send(("away", None))
        return
    except Exception as exc:  # the parent raises it: a broker gone, a refused login
        try:
            send.send(("error", exc))
        except Exception:  # not picklable: its type and message, in one line
            send.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
        return
    _send(send, part)
