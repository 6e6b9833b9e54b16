"""The dead-letter topic: every rejected input record, with where it came from and why.

The headers (``source_topic``, ``source_partition``, ``source_offset``, ``reason``, and
``value_omitted_bytes`` for a value too large to send) are described in docs/semantics.md.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from stream.runtime.batching import TopicWriter
from stream.runtime.reroute import ORIGIN_HEADERS, origin
from stream.runtime.seam.producer import Record, wait_for_metadata

log = logging.getLogger(__name__)


class DeadLetters:
    """Sends rejected records of a batch to the dead-letter topic as whole record batches."""

    def __init__(
        self,
        app: Any,
        topic: str,
        partitions: int,
        on_failure: Callable[[Exception], None],
        *,
        rerouted: frozenset[str] = frozenset(),
    ) -> None:
        self.topic = topic
        self._rerouted = rerouted  # internal topics whose records name their origin
        self.partitions = partitions  # corrected from the broker's metadata by ``refresh``
        self._max_request_size: int = app.conf.producer_max_request_size
        self._writer = TopicWriter(app, lambda: topic, on_failure)
        self._app = app

    async def refresh(self) -> None:
        """Read the topic's partition count from the broker (before the first batch)."""
        cluster = await wait_for_metadata(self._app, self.topic)
        partitions = cluster.partitions_for_topic(self.topic)
        if partitions:
            self.partitions = len(partitions)

    async def wait_for_room(self) -> None:
        """Wait while the producer has more than a little of this topic queued."""
        await self._writer.wait_for_room()

    def send(self, rejected: list[tuple[Any, str]]) -> None:
        """Send rejected records to the dead-letter topic, with where they came from and why.

        A record goes to the dead-letter partition of its source partition's number, in the
        order read. The records are queued, not awaited: the batch is handled without
        yielding, and Faust flushes the producer before it commits the batch's offsets.
        """
        by_partition: dict[int, list[Record]] = defaultdict(list)
        groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
        limit = self._max_request_size
        for msg, reason in rejected:
            headers = list(
                zip(ORIGIN_HEADERS, origin(msg, msg.topic in self._rerouted), strict=True)
            )
            headers.append(("reason", reason.encode()))
            value = msg.value
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(msg.key, value, headers)
            if size > limit:
                # The broker would refuse it and so fail the batch. Keep the record without
                # its value; the headers say where the original is.
                headers.append(("value_omitted_bytes", str(len(value)).encode()))
                value = None
                log.warning(
                    "dead letter without its value (larger than producer_max_request_size) "
                    "topic=%s partition=%s offset=%s bytes=%s",
                    msg.topic,
                    msg.partition,
                    msg.offset,
                    size,
                )
            by_partition[msg.partition % self.partitions].append((msg.key, value, headers))
            groups[(msg.topic, reason)].append(msg)
        for partition, records in by_partition.items():
            self._writer.send(partition, records)
        # One line per topic and reason per batch (a poison storm is thousands a second);
        # every record is in the dead-letter topic with its own offset.
        for (topic, reason), msgs in groups.items():
            log.info(
                "rejected topic=%s reason=%s count=%d first=%s:%s last=%s:%s",
                topic,
                reason,
                len(msgs),
                msgs[0].partition,
                msgs[0].offset,
                msgs[-1].partition,
                msgs[-1].offset,
            )
