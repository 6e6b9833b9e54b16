"""Records appended straight to aiokafka's producer queue, as whole record batches.

aiokafka's ``send`` takes one record per call, with a future and a serializer call each. The
worker writes thousands of changelog records per fetch, so ``append_records`` does what
``MessageAccumulator.add_message`` does for each record (join the partition's last waiting
batch, else start one), in one call, without a future per record; a full batch is closed and a
new one started instead of waiting for the sender (the caller waits before the next fetch,
``queued_batches``). tests/stream/runtime/test_seam.py compares it with ``add_message``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka.structs import TopicPartition

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]  # key, value, headers


def kafka_producer(app: Any) -> Any:
    """The app's aiokafka producer (Faust starts it with the app; this never creates one)."""
    return app.producer._ensure_producer()


async def wait_for_metadata(app: Any, topic: str) -> Any:
    """Wait until the producer knows ``topic``'s partitions; returns its cluster metadata."""
    client = kafka_producer(app).client
    await client._wait_on_metadata(topic)
    return client.cluster


def append_records(
    producer: Any, tp: TopicPartition, records: Iterable[Record], timestamp_ms: int
) -> list[tuple[Any, Any]]:
    """Queue ``records`` for ``tp``; returns the (batch, builder) pairs it started, in order.

    Records join the partition's last batch while it waits for the sender, as
    ``add_message`` does; each goes to the batch's own record builder, as
    ``BatchBuilder.append`` does without a serializer, saving a Python call per record, and
    with its arguments by position (parsing keywords cost the builder more than the record).
    """
    queue = producer._message_accumulator
    waiting = queue._batches.get(tp)
    batch: Any = waiting[-1]._builder if waiting else None  # aiokafka's BatchBuilder
    started: list[tuple[Any, Any]] = []
    # The batch's record builder and next offset, read once: nothing else runs until this
    # returns (no await), so the offset is written back when a batch is left or at the end.
    builder = None if batch is None or batch._closed else batch._builder
    offset = 0 if builder is None else batch._relative_offset
    for key, value, headers in records:
        if builder is not None:
            if builder.append(offset, timestamp_ms, key, value, headers) is not None:
                offset += 1
                continue
            batch._relative_offset = offset
            batch.close()  # full
        batch = producer.create_batch()
        batch.append(key=key, value=value, timestamp=timestamp_ms, headers=headers)
        started.append((queue._append_batch(batch, tp), batch))
        builder, offset = batch._builder, batch._relative_offset
    if builder is not None:
        batch._relative_offset = offset
    return started


def queued_batches(producer: Any, topic: str) -> list[Any]:
    """The queues of batches waiting for the sender, one per partition of ``topic``."""
    return [
        q for tp, q in list(producer._message_accumulator._batches.items()) if tp.topic == topic
    ]
