"""The gateway's Kafka producer: every event of a request acknowledged (acks=all), or an error.

Requests arriving together share Kafka batches: each request appends its messages to the
open batch of their topic and partition and waits for that batch's acknowledgement; one
flusher hands the open batches to aiokafka (``send_batch``) while the previous ones are on
the wire, so the batches grow with the load instead of one produce request per HTTP call.
A key's partition is its home partition (Kafka's default partitioner, murmur2), so the
worker never has to move a record (events.md, "Partitioning").

When Kafka does not acknowledge in ``timeout`` seconds the request fails with
:class:`ProduceFailed` (the gateway answers 503 and the client retries with the same
``messageId``); for ``retry_after`` seconds after that, requests fail at once rather than
piling more events behind the unreachable broker. A batch that is delivered after its request
gave up is harmless: the client's retry carries the same event ids, and the worker counts
each event id once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stream.config.topics import TopicNames
from stream.ingest.errors import ProduceFailed
from stream.ingest.mapping import OutMessage
from stream.kafka.partitioner import home_partition

log = logging.getLogger(__name__)

_MAX_BATCH_BYTES = 1024 * 1024  # a producer request stays under Kafka's default 1 MiB limit
_REQUEST_TIMEOUT_MS = 30_000


@dataclass
class _Round:
    """The open batches that the next flush sends, and who waits for them."""

    builders: dict[tuple[str, int], Any] = field(default_factory=dict)
    full: list[tuple[tuple[str, int], Any]] = field(default_factory=list)
    acked: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class EventProducer:
    """Produces mapped messages to the input topics; ``send`` returns once all are acked."""

    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        topics: TopicNames,
        *,
        timeout: float,
        retry_after: float,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.topics = {"visits": topics.visits, "leads": topics.leads}
        self.topics["transitions"] = topics.transitions
        self.timeout = timeout
        self.retry_after = retry_after
        self.producer = AIOKafkaProducer(
            bootstrap_servers=list(bootstrap_servers),
            acks="all",
            # The embedded broker has no idempotent producer; event ids make retries safe.
            enable_idempotence=False,
            max_batch_size=_MAX_BATCH_BYTES,
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
            # While Kafka is away aiokafka logs every retry; five a second is plenty.
            retry_backoff_ms=200,
            **dict(client_kwargs or {}),
        )
        self._partitions: dict[str, int] = {}
        self._round: _Round | None = None
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._waiting: set[asyncio.Task[None]] = set()
        self._down_until = 0.0

    async def start(self) -> None:
        """Connect and learn the input topics' partition counts."""
        await self.producer.start()
        for topic in self.topics.values():
            self._partitions[topic] = len(await self.producer.partitions_for(topic))
        self._flusher = asyncio.create_task(self._flush_forever(), name="ingest-flusher")

    async def stop(self) -> None:
        """Send what is open, then disconnect."""
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._round is not None:
            await asyncio.gather(self._send_round(self._take()), return_exceptions=True)
        await self.producer.stop()

    async def send(self, messages: Sequence[OutMessage]) -> None:
        """Produce ``messages``; returns once Kafka has acknowledged every one of them.

        Raises :class:`ProduceFailed` when it has not within the timeout, or recently failed.
        """
        if not messages:
            return
        if time.monotonic() < self._down_until:
            raise ProduceFailed("Kafka was unreachable moments ago")
        current = self._round
        if current is None:
            current = self._round = _Round()
            self._wake.set()
        builders, topics, partitions = current.builders, self.topics, self._partitions
        for message in messages:
            topic = topics[message.kind]
            tp = (topic, home_partition(message.key, partitions[topic]))
            builder = builders.get(tp)
            if builder is None:
                builder = builders[tp] = self.producer.create_batch()
            if builder.append(key=message.key, value=message.value, timestamp=None) is None:
                current.full.append((tp, builder))
                builder = builders[tp] = self.producer.create_batch()
                builder.append(key=message.key, value=message.value, timestamp=None)
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.shield(current.acked)
        except TimeoutError:
            self._down_until = time.monotonic() + self.retry_after
            raise ProduceFailed(f"Kafka did not acknowledge within {self.timeout:g} s") from None

    def _take(self) -> _Round:
        current, self._round = self._round, None
        assert current is not None
        return current

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._round is None:
                continue
            current = self._take()
            try:
                futures = await self._send_round(current)
            except (KafkaError, OSError) as exc:
                self._fail(current, exc)
                continue
            task = asyncio.create_task(self._await_acks(current, futures))
            self._waiting.add(task)
            task.add_done_callback(self._waiting.discard)

    async def _send_round(self, current: _Round) -> list[asyncio.Future[Any]]:
        futures = []
        for (topic, partition), builder in (*current.full, *current.builders.items()):
            futures.append(await self.producer.send_batch(builder, topic, partition=partition))
        return futures

    async def _await_acks(self, current: _Round, futures: list[asyncio.Future[Any]]) -> None:
        try:
            await asyncio.gather(*futures)
        except (KafkaError, OSError) as exc:
            self._fail(current, exc)
        else:
            if not current.acked.done():
                current.acked.set_result(None)

    def _fail(self, current: _Round, exc: BaseException) -> None:
        log.warning("produce failed error=%s", type(exc).__name__)
        self._down_until = time.monotonic() + self.retry_after
        if not current.acked.done():
            current.acked.set_exception(ProduceFailed(f"Kafka refused the batch: {exc}"))
            current.acked.exception()  # retrieved: the waiters may all have given up
