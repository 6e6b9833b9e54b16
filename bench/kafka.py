"""The benchmark's traffic and its bookkeeping on the broker: what is produced, what is committed.

Inputs are produced before a consumer starts (so a consumer's rate is its own, not the
producer's): the generator's realistic mix, or hand-built ``lead_created`` events without any
follow-up. The steady-rate producer paces itself against the wall clock. Completion is read on
the broker: a group has caught up when its committed offsets equal the topics' end offsets.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, TopicPartition

from stream.config.topics import TopicNames
from stream.generate import OutMessage, generate_messages, produce
from stream.kafka.admin import admin_client, ensure_topics
from stream.kafka.offsets import topic_end_offsets

log = logging.getLogger(__name__)

PARTITIONS = 8
# Event times of generated traffic: a week up to a minute ago (follow-ups after 24 h, breaches,
# the dedupe horizon all occur; nothing is in the future but the generator's malformed events).
_WINDOW_S = 7 * 86400.0
_WINDOW_END_AGO_S = 60.0
_TEAMS = ("emea", "americas", "apac", "enterprise")
_SOURCES = ("organic", "paid_search", "social", "referral", "email", "direct")
_PACE_TICK_S = 0.01

Offsets = dict[tuple[str, int], int]


async def create_topics(bootstrap: str, names: TopicNames) -> None:
    """Create the input and dead-letter topics with 8 partitions, as ``funnel topics`` does."""
    wanted = {name: PARTITIONS for name in (*names.inputs, names.dead_letter)}
    await ensure_topics(bootstrap, wanted)


def generated(names: TopicNames, *, count: int, seed: int) -> Iterator[OutMessage]:
    """``count`` messages of the generator's realistic mix over the last week of event time."""
    end = time.time() - _WINDOW_END_AGO_S
    return generate_messages(seed=seed, start=end - _WINDOW_S, end=end, count=count, topics=names)


def open_leads(
    names: TopicNames, *, first: int, count: int, start_s: float
) -> Iterator[OutMessage]:
    """``count`` hand-built, valid ``lead_created`` events (ids ``first``…), 1 ms apart."""
    start_ms = int(start_s * 1000)
    second, prefix = -1, ""
    for i in range(first, first + count):
        t_ms = start_ms + (i - first)
        s, ms = divmod(t_ms, 1000)
        if s != second:
            second, prefix = s, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
        lead_id = f"bench-lead-{i:09d}"
        value = (
            f'{{"event_id":"bench-ev-{i:09d}","type":"lead_created",'
            f'"occurred_at":"{prefix}.{ms:03d}Z","lead_id":"{lead_id}",'
            f'"source":{json.dumps(_SOURCES[i % len(_SOURCES)])},'
            f'"team":{json.dumps(_TEAMS[i % len(_TEAMS)])}}}'
        )
        yield OutMessage(names.leads, lead_id.encode(), value.encode(), t_ms / 1000)


async def produce_all(bootstrap: str, messages: Iterable[OutMessage], label: str) -> int:
    """Send every message as fast as the broker takes them; returns how many were acknowledged."""
    started = time.monotonic()
    last_log = [started]

    def progress(sent: int) -> None:
        now = time.monotonic()
        if now - last_log[0] >= 5.0:
            last_log[0] = now
            log.info("%s: produced %s", label, f"{sent:,}")

    sent = await produce(messages, [bootstrap], on_progress=progress)
    seconds = time.monotonic() - started
    log.info("%s: produced %s in %.1f s (%s/s)", label, f"{sent:,}", seconds, _rate(sent, seconds))
    return sent


@dataclass(frozen=True, slots=True)
class Paced:
    """What the steady producer did: messages sent and the seconds it took."""

    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages per second actually produced."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


async def produce_paced(
    bootstrap: str, messages: Iterable[OutMessage], *, rate: float, label: str
) -> Paced:
    """Send ``messages`` at ``rate`` per second (every 10 ms, what is due), then flush.

    Record timestamps are the producer's wall clock at sending, which is what the worker's
    ``funnel_processing_delay_seconds`` subtracts from its own clock.

    The objects alive when it starts are frozen (``gc.freeze``) until it ends: the
    harness's heap made each full collection in this process take 30-68 ms, every 3-4 s,
    while the sends stopped, and the records stamped just before carried that pause as delay
    (docs/performance.md, "How the measuring stays out of the way").
    """
    gc.collect()
    gc.freeze()
    try:
        return await _produce_paced(bootstrap, messages, rate=rate, label=label)
    finally:
        gc.unfreeze()


async def _produce_paced(
    bootstrap: str, messages: Iterable[OutMessage], *, rate: float, label: str
) -> Paced:
    producer = AIOKafkaProducer(
        bootstrap_servers=[bootstrap], linger_ms=1, acks=1, enable_idempotence=False
    )
    await producer.start()
    sent = 0
    pending: list[asyncio.Future[object]] = []
    source = iter(messages)
    try:
        started = last_log = time.monotonic()
        exhausted = False
        while not exhausted:
            due = int((time.monotonic() - started) * rate)
            while sent < due:
                message = next(source, None)
                if message is None:
                    exhausted = True
                    break
                pending.append(await producer.send(message.topic, message.value, key=message.key))
                sent += 1
            if len(pending) > 10_000:
                await asyncio.gather(*pending)
                pending.clear()
            now = time.monotonic()
            if now - last_log >= 5.0:
                last_log = now
                log.info("%s: %s sent (%s/s)", label, f"{sent:,}", _rate(sent, now - started))
            if not exhausted:
                await asyncio.sleep(_PACE_TICK_S)
        seconds = time.monotonic() - started
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return Paced(sent, seconds)


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> Offsets:
    """The end offset of every partition of ``topics``."""
    ends: Offsets = {}
    for topic in topics:
        for partition, end in (await topic_end_offsets(bootstrap, topic)).items():
            ends[(topic, partition)] = end
    return ends


async def committed_count(bootstrap: str, group: str, ends: Offsets) -> int:
    """How many of the messages before ``ends`` the group has committed past."""
    async with committed_counter(bootstrap, group, ends) as count:
        return await count()


@asynccontextmanager
async def committed_counter(
    bootstrap: str, group: str, ends: Offsets
) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """``committed_count`` for polling: one admin client kept for every call.

    A call is then one OffsetFetch request (about 0.6 ms of the harness's CPU) instead of a
    new client's connection and request, so completion can be polled often.
    """
    wanted = [TopicPartition(topic, partition) for topic, partition in ends]
    async with admin_client([bootstrap], None) as admin:

        async def count() -> int:
            committed = await admin.list_consumer_group_offsets(group, partitions=wanted)
            return sum(
                min(max(int(meta.offset), 0), ends[(tp.topic, tp.partition)])
                for tp, meta in committed.items()
            )

        yield count


def _rate(n: float, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "-"
