"""Reading the input topics back for a report or a measurement (the only I/O of the package).

The records are applied as they arrive (``Collector``), per topic in partition and offset
order, each on its key's home partition: nothing holds the topics in memory.

A report reads its partitions in several processes at once (``[report] processes``, by
default one per CPU; this one reads the first range): each reads every topic's records of a
contiguous range of partitions and gathers their facts, which ``merge`` puts back in the
order one pass gives. What a record changes belongs to its key's home partition only (the
states, the duplicate horizon, the event clock), so a process owning whole home partitions
decides exactly what one pass does. A record stored away from its home partition (a producer
with another partitioner) would belong to another process: the read then starts again in
one process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import Any

from stream.config.funnel_rules import rules_from_settings
from stream.config.settings import Settings
from stream.kafka.admin import bootstrap_list, wait_for_broker
from stream.kafka.offsets import topic_end_offsets
from stream.kafka.partitioner import home_partition
from stream.kafka.scan import READ_AHEAD_KB, librdkafka_config, scan_topic
from stream.kafka.security import client_kwargs
from stream.report.facts import Collector, Facts, PartialFacts, merge

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
    return _read(settings, ends, wall, None).finish()


def report_processes(settings: Settings) -> int:
    """How many processes read the topics: ``[report] processes``, else one per CPU."""
    return settings.report.processes or len(os.sched_getaffinity(0))


def home_ranges(partitions: int, processes: int) -> list[range]:
    """The home partitions split into at most ``processes`` contiguous ranges, in order."""
    n = max(1, min(processes, partitions))
    bounds = [partitions * i // n for i in range(n + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(n)]


def _read(settings: Settings, ends: Ends, wall: float, homes: range | None) -> Collector:
    """A collector with every record of the partitions of ``homes`` applied (None: every
    partition, in one process).

    A record read from ``homes`` whose home partition is outside it raises ``_AwayFromHome``.
    """
    collector = Collector(rules_from_settings(settings), clock_mode=settings.clock, now=wall)
    add, partitions = collector.add, settings.partitions
    servers = bootstrap_list(settings.bootstrap_servers)
    # The processes share the read-ahead a single reader has.
    share = 1.0 if homes is None else len(homes) / partitions
    config = {
        **librdkafka_config(settings.kafka),
        "queued.max.messages.kbytes": int(READ_AHEAD_KB * share),
    }
    for topic, kind in settings.topics.kinds.items():
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
    return collector


def _read_in_processes(
    settings: Settings, ends: Ends, wall: float, ranges: Sequence[range]
) -> Facts | None:
    """The facts read by one process per range of home partitions (this one reads the
    first), merged; None when a record is stored away from its home's range."""
    context = multiprocessing.get_context("fork")
    gc.freeze()  # the parent's objects stay shared with the children, not copied on write
    children: list[tuple[Any, Connection]] = []
    try:
        for homes in ranges[1:]:
            receive, send = context.Pipe(duplex=False)
            child = context.Process(
                target=_child, args=(send, settings, ends, wall, homes), daemon=True
            )
            child.start()
            send.close()
            children.append((child, receive))
        try:
            parts = [_read(settings, ends, wall, ranges[0]).finish_part()]
        except _AwayFromHome:
            return None
        for _, receive in children:
            part = _receive(receive)
            if part is None:
                return None
            parts.append(part)
        return merge(parts)
    finally:
        gc.unfreeze()
        for child, receive in children:
            receive.close()
            if child.is_alive():
                child.terminate()
            child.join()


_CHUNK = 10_000  # lead facts sent at a time: the facts are never pickled whole


def _send(send: Connection, part: PartialFacts) -> None:
    """Send ``part`` to the parent a piece at a time (``_receive``)."""
    facts = part.facts
    head = (part.leads_split, part.journeys_split, facts.whole_way, facts.as_of)
    send.send(("facts", (*head, facts.messages, facts.rejected)))
    for piece in facts.entries.sorted_parts():  # one (stage, source) at a time
        send.send(("entries", piece))
    for name, items in (("leads", facts.leads), ("journeys", facts.journeys)):
        for start in range(0, len(items), _CHUNK):
            send.send((name, items[start : start + _CHUNK]))
    send.send(("end", None))


def _receive(connection: Connection) -> PartialFacts | None:
    """The facts a report process sent (``_send``); None if it met a record away from home."""
    try:
        status, payload = connection.recv()
        if status == "error":
            raise payload
        if status == "away":
            return None
        leads_split, journeys_split, whole_way, as_of, messages, rejected = payload
        facts = Facts(whole_way=whole_way, as_of=as_of, messages=messages, rejected=rejected)
        while True:
            status, payload = connection.recv()
            if status == "entries":
                facts.entries.add_sorted(*payload)
            elif status == "leads":
                facts.leads.extend(payload)
            elif status == "journeys":
                facts.journeys.extend(payload)
            else:
                return PartialFacts(facts, leads_split, journeys_split)
    except EOFError:
        raise RuntimeError("a report process ended before sending its facts") from None


def _child(
    send: Connection, settings: Settings, ends: Mapping[str, dict[int, int]], wall: float,
    homes: range,
) -> None:  # fmt: skip
    """A report process: the facts of the records of ``homes``, sent to the parent."""
    try:
        part = _read(settings, dict(ends), wall, homes).finish_part()
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
