"""Offsets and reading topics back: end offsets, a group's committed offsets, every message.

Like :mod:`stream.kafka.admin`, every function takes the bootstrap servers and ``client_kwargs``
(the aiokafka security settings), and a broker that does not answer raises
:class:`~stream.errors.BrokerUnavailable` (one line).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# aiokafka ships no type information; the ignore stays valid if pyproject later silences it.
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition  # type: ignore[import-untyped,unused-ignore]

from stream.kafka.admin import (
    Servers,
    admin_client,
    bootstrap_list,
    partitions_by_topic,
    started,
    unavailable,
)

# A reader outside any consumer group: it commits nothing and starts from the beginning.
_READER = {"group_id": None, "enable_auto_commit": False, "auto_offset_reset": "earliest"}


def _reader(servers: Sequence[str], client_kwargs: Mapping[str, Any] | None) -> Any:
    client = AIOKafkaConsumer(bootstrap_servers=list(servers), **_READER, **(client_kwargs or {}))
    return started(client, servers)


async def _topic_partitions(
    servers: Sequence[str], client_kwargs: Mapping[str, Any] | None, topic: str
) -> list[Any]:
    """The topic's partitions as ``TopicPartition``s, ``[]`` if it does not exist."""
    async with admin_client(servers, client_kwargs) as admin:
        partitions = (await partitions_by_topic(admin)).get(topic, {})
    return [TopicPartition(topic, partition) for partition in sorted(partitions)]


async def _fetch(
    consumer: Any, pending: set[Any], deadline: float, servers: Sequence[str], doing: str
) -> dict[Any, list[ConsumerRecord]]:
    """One ``getmany`` on the pending partitions, bounded by the deadline."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        raise unavailable(servers, f"timed out {doing} ({len(pending)} partitions unfinished)")
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
    servers = bootstrap_list(bootstrap_servers)
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
    servers = bootstrap_list(bootstrap_servers)
    async with admin_client(servers, client_kwargs) as admin:
        known = await partitions_by_topic(admin)
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
    servers = bootstrap_list(bootstrap_servers)
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
