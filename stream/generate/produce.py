"""Sending synthetic traffic to Kafka: a fast producer loop and the live generator.

The producer does not wait for each delivery: it keeps up to ``_MAX_IN_FLIGHT`` sends
outstanding and collects their results as they complete, which reaches tens of thousands of
messages per second. Idempotence and transactions stay off because the embedded broker has
neither (docs: the embedded-broker notes); duplicates are part of the simulated traffic anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from stream.config.topics import TopicNames
from stream.errors import BrokerUnavailable
from stream.generate.model import OutMessage, TrafficGenerator
from stream.generate.profile import DAY_S, DEFAULT_PROFILE, TrafficProfile

logger = logging.getLogger(__name__)

_MAX_IN_FLIGHT = 50_000  # outstanding sends before the loop waits for the oldest
_PROGRESS_EVERY_S = 0.5
_PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger_ms": 20,
    "max_batch_size": 512 * 1024,
    "acks": 1,
    "enable_idempotence": False,
}


async def produce(
    messages: Iterable[OutMessage] | AsyncIterable[OutMessage],
    bootstrap_servers: Sequence[str],
    *,
    client_kwargs: Mapping[str, Any] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Send every message and return how many the broker acknowledged.

    Record timestamps are left to the producer (the wall clock at sending). ``client_kwargs``
    go to ``AIOKafkaProducer`` over the defaults (security settings, for example).
    ``on_progress`` receives the running total of acknowledged messages, about twice a second
    and once at the end. An unreachable broker raises :class:`BrokerUnavailable`; a failed
    delivery raises the producer's error.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=list(bootstrap_servers),
        **{**_PRODUCER_DEFAULTS, **(client_kwargs or {})},
    )
    try:
        await producer.start()
    except KafkaConnectionError as exc:
        with contextlib.suppress(KafkaConnectionError):
            await producer.stop()
        raise BrokerUnavailable(
            f"cannot reach Kafka at {','.join(bootstrap_servers)}: {exc}"
        ) from exc
    in_flight: deque[asyncio.Future[Any]] = deque()
    acknowledged = 0
    reported = 0
    reported_at = time.monotonic()
    stream = _as_async(messages)
    try:
        async for message in stream:
            in_flight.append(await producer.send(message.topic, message.value, key=message.key))
            if len(in_flight) >= _MAX_IN_FLIGHT:
                await in_flight[0]
            while in_flight and in_flight[0].done():
                in_flight.popleft().result()
                acknowledged += 1
            if on_progress is not None and acknowledged > reported:
                now = time.monotonic()
                if now - reported_at >= _PROGRESS_EVERY_S:
                    on_progress(acknowledged)
                    reported, reported_at = acknowledged, now
        while in_flight:
            await in_flight.popleft()
            acknowledged += 1
    finally:
        await stream.aclose()
        await producer.stop()
    if on_progress is not None:
        on_progress(acknowledged)
    return acknowledged


async def run_generator(
    *,
    bootstrap_servers: Sequence[str],
    topics: TopicNames,
    seed: int,
    rate: float,
    count: int | None = None,
    backfill_days: float = 0.0,
    profile: TrafficProfile = DEFAULT_PROFILE,
    client_kwargs: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[int], None] | None = None,
    tick_s: float = 0.1,
) -> int:
    """Produce synthetic traffic: first a backfill, then live; return the messages sent.

    ``rate`` is the approximate number of messages per second of event time, all topics
    together. With ``backfill_days`` > 0, the event times from that many days ago up to now
    (``clock()`` at the call) are produced first, as fast as the broker takes them; then the
    generator follows ``clock`` live, every ``tick_s`` seconds. It stops after ``count``
    messages if given, or when ``stop`` is set, and then waits for every delivery.
    """
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if backfill_days < 0:
        raise ValueError(f"backfill_days must not be negative, got {backfill_days}")
    now = clock()
    generator = TrafficGenerator(
        seed,
        profile,
        topics,
        start=now - backfill_days * DAY_S,
        visits_per_s=rate / profile.messages_per_visit(),
    )
    logger.info(
        "generator starting rate=%s backfill_days=%s count=%s seed=%s",
        rate,
        backfill_days,
        count,
        seed,
    )
    source = _traffic(generator, backfill_until=now, clock=clock, stop=stop, tick_s=tick_s)
    if count is not None:
        source = _take(source, count)
    async with contextlib.aclosing(source):
        sent = await produce(
            source, bootstrap_servers, client_kwargs=client_kwargs, on_progress=on_progress
        )
    logger.info("generator stopped messages=%d", sent)
    return sent


async def _traffic(
    generator: TrafficGenerator,
    *,
    backfill_until: float,
    clock: Callable[[], float],
    stop: asyncio.Event | None,
    tick_s: float,
) -> AsyncGenerator[OutMessage, None]:
    """The backfill at full speed, then live ticks until ``stop`` is set."""
    backfilled = 0
    for message in generator.iter_until(backfill_until):
        yield message
        backfilled += 1
        if backfilled % 4096 == 0:
            if stop is not None and stop.is_set():
                return
            await asyncio.sleep(0)  # let the producer's sender and the caller run
    if backfilled:
        logger.info("generator backfill done messages=%d", backfilled)
    while stop is None or not stop.is_set():
        for message in generator.advance(clock()):
            yield message
        if stop is None:
            await asyncio.sleep(tick_s)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick_s)


async def _take(
    source: AsyncGenerator[OutMessage, None], count: int
) -> AsyncGenerator[OutMessage, None]:
    if count <= 0:
        return
    taken = 0
    async with contextlib.aclosing(source):
        async for message in source:
            yield message
            taken += 1
            if taken >= count:
                return


async def _as_async(
    messages: Iterable[OutMessage] | AsyncIterable[OutMessage],
) -> AsyncGenerator[OutMessage, None]:
    if isinstance(messages, AsyncIterable):
        async for message in messages:
            yield message
    else:
        for message in messages:
            yield message
