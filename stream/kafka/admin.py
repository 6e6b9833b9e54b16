"""Kafka administration: reachability, the cluster's limits, topic creation.

Offsets and reading topics back are in :mod:`stream.kafka.offsets`, which shares the client
helpers here (``bootstrap_list``, ``admin_client``, ``started``).

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
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

# aiokafka ships no type information; the ignore stays valid if pyproject later silences it.
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


def bootstrap_list(bootstrap_servers: Servers) -> list[str]:
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


def unavailable(servers: Sequence[str], reason: str) -> BrokerUnavailable:
    return BrokerUnavailable(f"cannot reach Kafka at {','.join(servers)}: {reason}")


@asynccontextmanager
async def started(client: Any, servers: Sequence[str]) -> AsyncIterator[Any]:
    """Start an aiokafka client, always close it; "no answer" becomes BrokerUnavailable."""
    try:
        try:
            await client.start()
            yield client
        except _UNREACHABLE as exc:
            raise unavailable(servers, _reason(exc)) from exc
    finally:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())


def admin_client(servers: Sequence[str], client_kwargs: Mapping[str, Any] | None) -> Any:
    """An admin client for ``async with``: started, always closed, outages as one line."""
    client = AIOKafkaAdminClient(bootstrap_servers=list(servers), **(client_kwargs or {}))
    return started(client, servers)


async def partitions_by_topic(admin: Any) -> dict[str, dict[int, int]]:
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
    servers = bootstrap_list(bootstrap_servers)
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
    raise unavailable(servers, reason)


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
    servers = bootstrap_list(bootstrap_servers)
    async with admin_client(servers, client_kwargs) as admin:
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
    servers = bootstrap_list(bootstrap_servers)
    async with admin_client(servers, client_kwargs) as admin:
        existing = await partitions_by_topic(admin)
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
        partitions = await partitions_by_topic(admin)
        led = {
            name: sum(lead >= 0 for lead in partitions.get(name, {}).values()) for name in wanted
        }
        if not (pending := [name for name, count in wanted.items() if led[name] < count]):
            return partitions
        if loop.time() >= deadline:
            raise unavailable(servers, f"topics {', '.join(pending)} have no leader yet")
        await asyncio.sleep(_RETRY_SECONDS)
