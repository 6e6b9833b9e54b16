"""Reading a topic from the beginning, one partition after another, as the records arrive.

``read_topic`` (aiokafka) returns every record of a topic at once; a report over a month of a
busy site would hold millions of them. ``scan_topic`` hands them over in batches instead,
partition by partition in offset order, with librdkafka (``confluent-kafka``) fetching ahead
in its own threads while the caller works on the previous batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from stream.config.settings import KafkaSettings
from stream.kafka.admin import unavailable

__all__ = ["Record", "librdkafka_config", "scan_topic"]

Record = tuple[bytes | None, bytes | None]  # key, value

BATCH = 10_000  # records asked of librdkafka at a time
READ_AHEAD_KB = 4 * 1024  # fetched and not yet handed over, at most (librdkafka's queue)
STALL_S = 60.0  # no record for this long from an unfinished partition: the broker is gone
_POLL_S = 0.05
_READER = {
    "group.id": "funnel-report",  # required by librdkafka; nothing is committed
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "fetch.wait.max.ms": 10,  # a partition's last records come at once, not after 500 ms
    # Fetches of 2 MB a partition and 4 MB in all, at most 4 MB queued: 824,563 records/s
    # of a month's topics in one reader (10,000,000 records, the embedded broker); 891,246 /s
    # with 16, 32 and 32 MB, which each report process holds for no gain (it applies a few
    # hundred thousand records a second); 602,060 /s with 1, 2 and 2 MB.
    "max.partition.fetch.bytes": 2 * 1024 * 1024,
    "fetch.max.bytes": 4 * 1024 * 1024,
    "queued.max.messages.kbytes": READ_AHEAD_KB,
    # Once that much is queued librdkafka pauses fetching for this long (default 1 s): the
    # read then waits more than it reads (10,000,000 records, one reader, 16 MB fetches and
    # 32 MB queued: 44.5 s with 1 s, 11.2 s with 10 ms).
    "fetch.queue.backoff.ms": 10,
    "log_level": 3,
}


def librdkafka_config(kafka: KafkaSettings) -> dict[str, Any]:
    """The ``[kafka]`` security settings as librdkafka properties."""
    config: dict[str, Any] = {"security.protocol": kafka.security_protocol.lower()}
    if kafka.security_protocol.startswith("SASL_"):
        password = kafka.sasl_password
        config["sasl.mechanism"] = kafka.sasl_mechanism
        config["sasl.username"] = kafka.sasl_username
        config["sasl.password"] = password.get_secret_value() if password else None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        files = {
            "ssl.ca.location": kafka.ssl_cafile,
            "ssl.certificate.location": kafka.ssl_certfile,
            "ssl.key.location": kafka.ssl_keyfile,
        }
        config.update({name: str(path) for name, path in files.items() if path is not None})
    return {name: value for name, value in config.items() if value is not None}


def scan_topic(
    servers: Sequence[str],
    topic: str,
    ends: Mapping[int, int],
    *,
    config: Mapping[str, Any] | None = None,
) -> Iterator[tuple[int, list[Record]]]:
    """(partition, records) batches of ``topic``: every record before ``ends[partition]``
    (the high watermarks, ``topic_end_offsets``), by partition, then offset.

    Raises :class:`BrokerUnavailable` if an unfinished partition yields nothing for
    ``STALL_S`` seconds.
    """
    consumer = Consumer({"bootstrap.servers": ",".join(servers), **_READER, **(config or {})})
    try:
        for partition, end in sorted(ends.items()):
            if end > 0:
                yield from _scan_partition(consumer, servers, topic, partition, end)
    finally:
        consumer.close()


def _scan_partition(
    consumer: Any, servers: Sequence[str], topic: str, partition: int, end: int
) -> Iterator[tuple[int, list[Record]]]:
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    last_seen = time.monotonic()
    try:
        while True:
            messages = consumer.consume(BATCH, _POLL_S)
            batch: list[Record] = []
            done = False
            for message in messages:
                error = message.error()
                if error is not None:
                    raise unavailable(servers, f"reading {topic}: {error.str()}")
                offset = message.offset()
                if offset >= end:
                    done = True
                    break
                batch.append((message.key(), message.value()))
                if offset == end - 1:
                    done = True
                    break
            if batch:
                yield partition, batch
                last_seen = time.monotonic()
            if done or _position(consumer, topic, partition) >= end:
                return
            if time.monotonic() - last_seen > STALL_S:
                raise unavailable(servers, f"timed out reading {topic} partition {partition}")
    finally:
        consumer.unassign()


def _position(consumer: Any, topic: str, partition: int) -> int:
    """The offset of the next record the consumer returns (-1 before the first)."""
    [tp] = consumer.position([TopicPartition(topic, partition)])
    return int(tp.offset)
