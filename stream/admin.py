"""Kafka administration: reachability, topic creation, offsets, reading a topic back.

Every function takes the bootstrap servers (a list of ``host:port``, or one comma-separated
string; a ``kafka://`` scheme is accepted and dropped) and ``client_kwargs``, the security
settings (``security_protocol``, ``sasl_*``, ``ssl_context``) handed to every aiokafka client it
opens. Each client is closed before the function returns. A broker that cannot be reached raises
:class:`~stream.errors.BrokerUnavailable` with a one-line message.

Metadata is always requested for *all* topics: a metadata request naming a topic that does not
exist makes the embedded broker (and Kafka with ``auto.create.topics.enable``) create it with
its default partition count, which would defeat :func:`ensure_topics`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

# aiokafka ships no type information; the ignore stays valid if pyproject later silences it.
from aiokafka import (  # type: ignore[import-untyped,unused-ignore]
    AIOKafkaConsumer,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import (  # type: ignore[import-untyped,unused-ignore]
    AIOKafkaAdminClient,
    NewTopic,
)
from aiokafka.errors import (  # type: ignore[import-untyped,unused-ignore]
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    for_code,
)

from stream.errors import BrokerUnavailable, ConfigError

__all__ = [
    "consumer_group_offsets",
    "ensure_topics",
    "read_topic",
    "topic_end_offsets",
    "wait_for_broker",
]

logger = logging.getLogger(__name__)

Servers = str | Sequence[str]

# Errors that mean "the broker did not answer", as opposed to "the broker said no".
_UNREACHABLE = (
    OSError,
    TimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)
_RETRY_SECONDS = 0.2
_DEFAULT_PORT = 9092


def _servers(bootstrap_servers: Servers) -> list[str]:
    """Normalise the bootstrap servers to aiokafka's list of ``host:port``."""
    items = (
        bootstrap_servers.split(",") if isinstance(bootstrap_servers, str) else bootstrap_servers
    )
    servers = [item.strip().removeprefix("kafka://").rstrip("/") for item in items]
    servers = [server for server in servers if server]
    if not servers:
        raise ValueError("no Kafka bootstrap servers given")
    return servers


def _host_port(server: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` too); the port defaults to Kafka's 9092."""
    host, sep, port = server.rpartition(":")
    if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
        return server.strip("[]"), _DEFAULT_PORT
    return host.strip("[]"), int(port)


def _reason(exc: BaseException) -> str:
    """A short, single-line description of why a request failed."""
    if isinstance(exc, ssl.SSLError):
        text = f"TLS: {exc.reason or exc}"
    elif isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno).lower()  # asyncio's strerror repeats the address
    elif isinstance(exc, TimeoutError) and not str(exc):
        text = "timed out"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _unavailable(servers: Sequence[str], reason: str) -> BrokerUnavailable:
    return BrokerUnavailable(f"cannot reach Kafka at {','.join(servers)}: {reason}")


@asynccontextmanager
async def _admin_client(
    servers: Sequence[str], client_kwargs: Mapping[str, Any] | None
) -> AsyncIterator[Any]:
    """A started admin client; connection failures become :class:`BrokerUnavailable`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=list(servers), **(client_kwargs or {}))
    try:
        try:
            await admin.start()
            yield admin
        except _UNREACHABLE as exc:
            raise _unavailable(servers, _reason(exc)) from exc
    finally:
        await admin.close()


@asynccontextmanager
async def _plain_consumer(
    servers: Sequence[str], client_kwargs: Mapping[str, Any] | None
) -> AsyncIterator[Any]:
    """A started consumer outside any group, committing nothing."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=list(servers),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **(client_kwargs or {}),
    )
    try:
        try:
            await consumer.start()
            yield consumer
        except _UNREACHABLE as exc:
            raise _unavailable(servers, _reason(exc)) from exc
    finally:
        await consumer.stop()


async def _partitions_by_topic(admin: Any) -> dict[str, dict[int, int]]:
    """Every topic's partitions as ``{topic: {partition: leader}}`` (metadata for all topics)."""
    described: list[dict[str, Any]] = await admin.describe_topics()
    return {
        topic["topic"]: {p["partition"]: p["leader"] for p in topic["partitions"]}
        for topic in described
    }


async def _probe(
    servers: Sequence[str], client_kwargs: Mapping[str, Any], connected: list[str]
) -> None:
    """One attempt: a TCP connection, then a metadata request through the advertised address.

    Appends the server that accepted the TCP connection to ``connected``.
    """
    # A plain TCP attempt first, so a closed port reads "connection refused" instead of
    # aiokafka's bootstrap error (which it also logs at ERROR on every retry).
    last_error: OSError | None = None
    for server in servers:
        try:
            _, writer = await asyncio.open_connection(*_host_port(server))
        except OSError as exc:
            last_error = exc
            continue
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()
        connected.append(server)
        break
    else:
        assert last_error is not None
        raise last_error
    admin = AIOKafkaAdminClient(bootstrap_servers=list(servers), **client_kwargs)
    try:
        await admin.start()
        cluster: dict[str, Any] = await admin.describe_cluster()
    finally:
        await admin.close()
    if not cluster.get("brokers"):
        raise KafkaConnectionError("the metadata lists no brokers")


async def wait_for_broker(bootstrap_servers: Servers, timeout: float, **client_kwargs: Any) -> None:
    """Wait until the Kafka cluster answers a metadata request, retrying for ``timeout`` seconds.

    Raises :class:`BrokerUnavailable` ("cannot reach Kafka at HOST:PORT: reason") if it does not
    answer in time. ``client_kwargs`` are the aiokafka security settings.
    """
    servers = _servers(bootstrap_servers)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    reason = f"no answer within {timeout:g} s"
    kwargs = {"request_timeout_ms": max(1, int(timeout * 1000)), **client_kwargs}
    while (remaining := deadline - loop.time()) > 0:
        connected: list[str] = []
        try:
            async with asyncio.timeout(remaining):
                await _probe(servers, kwargs, connected)
        except TimeoutError:
            reason = f"no answer within {timeout:g} s"
            if connected:  # a port is open, but what answers does not speak this protocol
                protocol = kwargs.get("security_protocol", "PLAINTEXT")
                reason = (
                    f"{connected[0]} accepts connections but gave no Kafka answer within "
                    f"{timeout:g} s (security_protocol={protocol})"
                )
        except _UNREACHABLE as exc:
            reason = _reason(exc)
        else:
            return
        await asyncio.sleep(max(0.0, min(_RETRY_SECONDS, deadline - loop.time())))
    raise _unavailable(servers, reason)


async def ensure_topics(
    bootstrap_servers: Servers,
    topics: Mapping[str, int],
    *,
    replication_factor: int = 1,
    client_kwargs: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Create the topics that are missing, ``topics`` mapping each name to its partition count.

    Idempotent: an existing topic is left alone. Returns, per topic in the given order,
    ``"created"``, ``"exists"``, or ``"exists (4 partitions, wanted 8)"`` when an existing topic
    has a different partition count (Kafka cannot shrink a topic, and growing one would move keys
    between partitions, so that is left to the operator). A topic the broker refuses to create
    raises :class:`ConfigError`; created topics are waited for (up to ``timeout`` seconds) until
    every partition has a leader.
    """
    for name, partitions in topics.items():
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be at least 1, got {partitions}")
    servers = _servers(bootstrap_servers)
    async with _admin_client(servers, client_kwargs) as admin:
        existing = await _partitions_by_topic(admin)
        missing = [name for name in topics if name not in existing]
        created: list[str] = []
        if missing:
            created = await _create(admin, topics, missing, replication_factor, timeout)
            await _wait_until_led(admin, servers, {name: topics[name] for name in created}, timeout)
            existing = await _partitions_by_topic(admin)
    report: dict[str, str] = {}
    for name, wanted in topics.items():
        if name in created:
            report[name] = "created"
            continue
        have = len(existing.get(name, {}))
        report[name] = (
            "exists" if have == wanted else f"exists ({have} partitions, wanted {wanted})"
        )
        if have < wanted:
            logger.warning("topic=%s partitions=%d wanted=%d status=exists", name, have, wanted)
    for name, status in report.items():
        logger.info("topic=%s partitions=%d status=%s", name, topics[name], status)
    return report


async def _create(
    admin: Any,
    topics: Mapping[str, int],
    names: Sequence[str],
    replication_factor: int,
    timeout: float,
) -> list[str]:
    """Create ``names``; returns those this call created (a concurrent creator may win a race)."""
    response = await admin.create_topics(
        [NewTopic(name, topics[name], replication_factor) for name in names],
        timeout_ms=max(1, int(timeout * 1000)),
    )
    created: list[str] = []
    for entry in response.topic_errors:  # (topic, error_code[, error_message])
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 and entry[2] else ""
        if code == 0:
            created.append(name)
        elif code != TopicAlreadyExistsError.errno:
            error = for_code(code).__name__
            raise ConfigError(
                f"the broker refused to create topic {name!r} ({topics[name]} partitions, "
                f"replication factor {replication_factor}): {error} {message}".rstrip()
            )
    return created


async def _wait_until_led(
    admin: Any, servers: Sequence[str], wanted: Mapping[str, int], timeout: float
) -> None:
    """Wait until every partition of the new topics appears in metadata with a leader."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        partitions = await _partitions_by_topic(admin)
        pending = [
            name
            for name, count in wanted.items()
            if len(partitions.get(name, {})) < count
            or any(leader < 0 for leader in partitions[name].values())
        ]
        if not pending:
            return
        if loop.time() >= deadline:
            raise _unavailable(servers, f"topics {', '.join(pending)} have no leader yet")
        await asyncio.sleep(_RETRY_SECONDS)


async def topic_end_offsets(
    bootstrap_servers: Servers,
    topic: str,
    *,
    client_kwargs: Mapping[str, Any] | None = None,
) -> dict[int, int]:
    """The high watermark (offset of the next message) of each partition of ``topic``.

    An unknown topic gives ``{}`` (and is not created by asking).
    """
    servers = _servers(bootstrap_servers)
    async with _admin_client(servers, client_kwargs) as admin:
        partitions = (await _partitions_by_topic(admin)).get(topic, {})
    if not partitions:
        return {}
    async with _plain_consumer(servers, client_kwargs) as consumer:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in sorted(partitions)])
    return {tp.partition: int(offset) for tp, offset in ends.items()}


async def consumer_group_offsets(
    bootstrap_servers: Servers,
    group_id: str,
    topics: Iterable[str],
    *,
    client_kwargs: Mapping[str, Any] | None = None,
) -> dict[tuple[str, int], int]:
    """The offsets ``group_id`` has committed on ``topics``, as ``{(topic, partition): offset}``.

    Partitions without a committed offset (and unknown topics) are left out.
    """
    servers = _servers(bootstrap_servers)
    async with _admin_client(servers, client_kwargs) as admin:
        known = await _partitions_by_topic(admin)
        wanted = [
            TopicPartition(topic, partition)
            for topic in dict.fromkeys(topics)
            for partition in sorted(known.get(topic, {}))
        ]
        if not wanted:
            return {}
        # Partitions are always named: the embedded broker drops the connection when asked
        # for "all of the group's offsets" (a null topic list).
        committed: dict[Any, Any] = await admin.list_consumer_group_offsets(
            group_id, partitions=wanted
        )
    return {
        (tp.topic, tp.partition): int(meta.offset)
        for tp, meta in committed.items()
        if meta.offset >= 0
    }


async def read_topic(
    bootstrap_servers: Servers,
    topic: str,
    *,
    timeout: float = 10.0,
    client_kwargs: Mapping[str, Any] | None = None,
) -> list[ConsumerRecord]:
    """Every message in ``topic`` from the beginning up to the end offsets at call time.

    Records (keys and values as ``bytes``) come ordered by partition, then offset; messages
    produced after the call started are not included. An unknown topic gives ``[]``. Raises
    :class:`BrokerUnavailable` if the messages cannot be read within ``timeout`` seconds.
    """
    servers = _servers(bootstrap_servers)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with _admin_client(servers, client_kwargs) as admin:
        partitions = (await _partitions_by_topic(admin)).get(topic, {})
    if not partitions:
        return []
    records: list[ConsumerRecord] = []
    async with _plain_consumer(servers, client_kwargs) as consumer:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        starts: dict[Any, int] = await consumer.beginning_offsets(tps)
        ends: dict[Any, int] = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > starts[tp]}
        if not pending:
            return []
        consumer.assign(sorted(pending))
        await consumer.seek_to_beginning(*pending)
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _unavailable(
                    servers,
                    f"reading {topic} timed out after {timeout:g} s "
                    f"with {len(records)} messages read and {len(pending)} partitions unfinished",
                )
            batch = await consumer.getmany(*pending, timeout_ms=int(min(remaining, 0.5) * 1000))
            for tp, messages in batch.items():
                records.extend(m for m in messages if m.offset < ends[tp])
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
    records.sort(key=lambda record: (record.partition, record.offset))
    return records
