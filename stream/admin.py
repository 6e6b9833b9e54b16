"""Kafka administration: reachability, topic creation, offsets, reading a topic back.

Every function takes the bootstrap servers (a list of ``host:port``, or one comma-separated
string; a ``kafka://`` scheme is dropped) and ``client_kwargs``, the security settings
(``security_protocol``, ``sasl_*``, ``ssl_context``) given to every aiokafka client it opens and
closes. A broker that does not answer raises :class:`~stream.errors.BrokerUnavailable` (one line).

Metadata is always asked for *all* topics: naming a missing topic in a metadata request makes
the embedded broker (and Kafka with ``auto.create.topics.enable``) create it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

# aiokafka ships no type information; the ignore stays valid if pyproject later silences it.
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin.config_resource import (  # type: ignore[import-untyped,unused-ignore]
    ConfigResource,
    ConfigResourceType,
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

logger = logging.getLogger(__name__)

Servers = str | Sequence[str]

# Errors that mean "the broker did not answer", as opposed to "the broker said no".
_UNREACHABLE = (
    OSError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
)
_RETRY_SECONDS = 0.2
_SESSION_FLOOR = "group.min.session.timeout.ms"
# A reader outside any consumer group: it commits nothing and starts from the beginning.
_READER = {"group_id": None, "enable_auto_commit": False, "auto_offset_reset": "earliest"}


def _servers(bootstrap_servers: Servers) -> list[str]:
    """Normalise the bootstrap servers to aiokafka's list of ``host:port``."""
    if isinstance(bootstrap_servers, str):
        bootstrap_servers = bootstrap_servers.split(",")
    servers = [item.strip().removeprefix("kafka://").rstrip("/") for item in bootstrap_servers]
    if not (servers := [server for server in servers if server]):
        raise ValueError("no Kafka bootstrap servers given")
    return servers


def _host_port(server: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` too); the port defaults to Kafka's 9092."""
    host, sep, port = server.rpartition(":")
    if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
        return server.strip("[]"), 9092
    return host.strip("[]"), int(port)


def _reason(exc: BaseException) -> str:
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
async def _started(client: Any, servers: Sequence[str]) -> AsyncIterator[Any]:
    """Start an aiokafka client, always close it; "no answer" becomes BrokerUnavailable."""
    try:
        try:
            await client.start()
            yield client
        except _UNREACHABLE as exc:
            raise _unavailable(servers, _reason(exc)) from exc
    finally:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())


def _admin_client(servers: Sequence[str], client_kwargs: Mapping[str, Any] | None) -> Any:
    client = AIOKafkaAdminClient(bootstrap_servers=list(servers), **(client_kwargs or {}))
    return _started(client, servers)


def _reader(servers: Sequence[str], client_kwargs: Mapping[str, Any] | None) -> Any:
    client = AIOKafkaConsumer(bootstrap_servers=list(servers), **_READER, **(client_kwargs or {}))
    return _started(client, servers)


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
    """One attempt: TCP (TLS if configured; noting in ``connected`` who accepted), then a
    metadata request. The connection comes first so a closed port reads "connection refused"
    and a refused certificate "CERTIFICATE_VERIFY_FAILED", rather than aiokafka's bootstrap
    error (which it also logs at ERROR on every retry).
    """
    last_error: OSError | None = None
    context = client_kwargs.get("ssl_context")
    for server in servers:
        try:
            _, writer = await asyncio.open_connection(*_host_port(server), ssl=context)
        except OSError as exc:
            last_error = exc
            continue
        writer.close()
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
            if isinstance(exc, ssl.SSLError):  # a refused handshake does not heal by waiting
                break
        else:
            return
        await asyncio.sleep(max(0.0, min(_RETRY_SECONDS, deadline - loop.time())))
    raise _unavailable(servers, reason)


async def group_session_floor(
    bootstrap_servers: Servers, *, client_kwargs: Mapping[str, Any] | None = None
) -> float | None:
    """The smallest consumer session timeout the cluster accepts, in seconds, or None if it
    does not say.

    Apache Kafka refuses a consumer group member whose session timeout is below the brokers'
    ``group.min.session.timeout.ms`` (6 s by default): the worker asks for it (DescribeConfigs)
    and never goes below it. The embedded broker has no such floor and closes the connection
    on this request; a cluster may also refuse it (an authorization error): None then.
    """
    servers = _servers(bootstrap_servers)
    async with _admin_client(servers, client_kwargs) as admin:
        cluster: dict[str, Any] = await admin.describe_cluster()
        resource = ConfigResource(
            ConfigResourceType.BROKER, str(cluster["brokers"][0]["node_id"]), {_SESSION_FLOOR: None}
        )
        try:
            responses = await admin.describe_configs([resource])
        except _UNREACHABLE:
            return None
    for response in responses:
        for error_code, _, _, _, entries, *_ in response.resources:
            if error_code:
                return None
            for name, value, *_ in entries:
                if name == _SESSION_FLOOR and value:
                    return int(value) / 1000
    return None


async def ensure_topics(
    bootstrap_servers: Servers,
    topics: Mapping[str, int],
    *,
    replication_factor: int = 1,
    client_kwargs: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Create the missing topics (``topics`` maps names to partition counts); idempotent.

    Returns per topic, in order, ``"created"``, ``"exists"`` or ``"exists (4 partitions, wanted
    8)"``: an existing topic is left alone (growing it would move keys between partitions; that
    is the operator's call). A refused creation raises :class:`ConfigError`. New topics are
    waited for (up to ``timeout`` seconds) until every partition has a leader.
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
            new = {name: topics[name] for name in created}
            existing = await _wait_until_led(admin, servers, new, timeout)
    report: dict[str, str] = {}
    for name, wanted in topics.items():
        have = len(existing.get(name, {}))
        note = "" if have == wanted else f" ({have} partitions, wanted {wanted})"
        report[name] = ("created" if name in created else "exists") + note
        log = logger.info if have == wanted else logger.warning
        log("topic=%s partitions=%d wanted=%d status=%s", name, have, wanted, report[name])
    return report


async def _create(
    admin: Any, topics: Mapping[str, int], names: Sequence[str], replication: int, timeout: float
) -> list[str]:
    """Create ``names``; returns those this call created (a concurrent creator may win a race)."""
    response = await admin.create_topics(
        [NewTopic(name, topics[name], replication) for name in names],
        timeout_ms=max(1, int(timeout * 1000)),
    )
    for name, code, *message in response.topic_errors:  # v1+ adds an error message
        if code not in (0, TopicAlreadyExistsError.errno):
            raise ConfigError(
                f"the broker refused to create topic {name!r} ({topics[name]} partitions, "
                f"replication factor {replication}): {for_code(code).__name__} "
                f"{message[0] if message and message[0] else ''}".rstrip()
            )
    return [name for name, code, *_ in response.topic_errors if code == 0]


async def _wait_until_led(
    admin: Any, servers: Sequence[str], wanted: Mapping[str, int], timeout: float
) -> dict[str, dict[int, int]]:
    """Wait until every partition of the new topics has a leader; returns all partitions."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        partitions = await _partitions_by_topic(admin)
        led = {
            name: sum(lead >= 0 for lead in partitions.get(name, {}).values()) for name in wanted
        }
        if not (pending := [name for name, count in wanted.items() if led[name] < count]):
            return partitions
        if loop.time() >= deadline:
            raise _unavailable(servers, f"topics {', '.join(pending)} have no leader yet")
        await asyncio.sleep(_RETRY_SECONDS)


async def _topic_partitions(
    servers: Sequence[str], client_kwargs: Mapping[str, Any] | None, topic: str
) -> list[Any]:
    """The topic's partitions as ``TopicPartition``s, ``[]`` if it does not exist."""
    async with _admin_client(servers, client_kwargs) as admin:
        partitions = (await _partitions_by_topic(admin)).get(topic, {})
    return [TopicPartition(topic, partition) for partition in sorted(partitions)]


async def _fetch(
    consumer: Any, pending: set[Any], deadline: float, servers: Sequence[str], doing: str
) -> dict[Any, list[ConsumerRecord]]:
    """One ``getmany`` on the pending partitions, bounded by the deadline."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        raise _unavailable(servers, f"timed out {doing} ({len(pending)} partitions unfinished)")
    batch: dict[Any, list[ConsumerRecord]] = await consumer.getmany(
        *pending, timeout_ms=int(min(remaining, 0.5) * 1000)
    )
    return batch


async def _high_watermarks(
    consumer: Any, tps: Sequence[Any], servers: Sequence[str], deadline: float
) -> dict[Any, int]:
    """Each partition's high watermark, as a fetch response reports it.

    ListOffsets ("latest") alone is not enough: the embedded broker (Tansu 0.6.0) answers the
    last record *batch*'s base offset + 1, short of the end whenever that batch holds several
    records. So fetch from just below the listed end and keep the larger of the listed offset
    and the fetch's high watermark, which is right on Tansu and on Kafka alike.
    """
    listed: dict[Any, int] = await consumer.end_offsets(list(tps))
    ends = {tp: int(offset) for tp, offset in listed.items()}
    pending = {tp for tp in tps if ends[tp] > 0}
    if not pending:
        return ends
    consumer.assign(sorted(pending))
    for tp in pending:
        consumer.seek(tp, ends[tp] - 1)
    while pending:
        await _fetch(consumer, pending, deadline, servers, "asking for high watermarks")
        for tp in list(pending):
            highwater: int | None = consumer.highwater(tp)
            if highwater is not None:
                ends[tp] = max(ends[tp], highwater)
                pending.discard(tp)
    return ends


async def topic_end_offsets(
    bootstrap_servers: Servers,
    topic: str,
    *,
    timeout: float = 10.0,
    client_kwargs: Mapping[str, Any] | None = None,
) -> dict[int, int]:
    """The high watermark (offset of the next message) of each partition of ``topic``.

    An unknown topic gives ``{}`` (and is not created by asking). Raises
    :class:`BrokerUnavailable` if the broker does not answer within ``timeout`` seconds.
    """
    servers = _servers(bootstrap_servers)
    deadline = asyncio.get_running_loop().time() + timeout
    tps = await _topic_partitions(servers, client_kwargs, topic)
    if not tps:
        return {}
    async with _reader(servers, client_kwargs) as consumer:
        ends = await _high_watermarks(consumer, tps, servers, deadline)
    return {tp.partition: offset for tp, offset in sorted(ends.items())}


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
    deadline = asyncio.get_running_loop().time() + timeout
    tps = await _topic_partitions(servers, client_kwargs, topic)
    if not tps:
        return []
    records: list[ConsumerRecord] = []
    async with _reader(servers, client_kwargs) as consumer:
        starts: dict[Any, int] = await consumer.beginning_offsets(tps)
        ends = await _high_watermarks(consumer, tps, servers, deadline)
        pending = {tp for tp in tps if ends[tp] > starts[tp]}
        if not pending:
            return []
        consumer.assign(sorted(pending))
        await consumer.seek_to_beginning(*pending)
        while pending:
            batch = await _fetch(consumer, pending, deadline, servers, f"reading {topic}")
            for tp, messages in batch.items():
                records.extend(m for m in messages if m.offset < ends[tp])
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
    records.sort(key=lambda record: (record.partition, record.offset))
    return records
