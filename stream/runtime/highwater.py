"""Correct high watermarks for Faust's table recovery on the embedded broker.

Faust asks the broker for each changelog partition's end with ListOffsets ("latest") before
recovering a table, and refuses to start (``ConsistencyError``) when the local store has
applied more than that. The embedded broker (Tansu 0.6.0) answers the last record *batch*'s
base offset + 1, short of the real end whenever that batch holds several records, which
batched changelog writes always produce. ``install()`` makes Faust take the larger of that
answer and the high watermark a fetch reports (``stream.kafka.offsets.topic_end_offsets``), which is
right on Tansu and on Apache Kafka alike (there the two agree).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from stream.kafka.offsets import topic_end_offsets

_original = AIOKafkaConsumerThread._highwaters


def install(bootstrap_servers: Sequence[str], client_kwargs: Mapping[str, Any]) -> None:
    """Patch Faust's consumer thread to use corrected high watermarks."""
    servers = list(bootstrap_servers)

    async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
        listed: Mapping[Any, int] = await _original(self, partitions)
        by_topic: dict[str, list[Any]] = defaultdict(list)
        for tp in partitions:
            if listed.get(tp):  # an empty partition is listed right: nothing to correct
                by_topic[tp.topic].append(tp)
        corrected = dict(listed)
        for topic, tps in by_topic.items():
            ends = await topic_end_offsets(servers, topic, client_kwargs=client_kwargs)
            for tp in tps:
                corrected[tp] = max(corrected.get(tp) or 0, ends.get(tp.partition, 0))
        return corrected

    AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
