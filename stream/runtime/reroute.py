"""Records read from another partition than their key's home partition, moved there.

Producers do not all use Kafka's default partitioner (librdkafka's default is CRC32, some
send round-robin), but a lead's events must meet on one partition, and a visitor's
duplicates too. So a record read from an input topic on a partition other than its key's
home partition (``stream.kafka.partitioner``) is not applied there: it is appended to the
same partition number of an internal topic (``stream.config.topics.rerouted_topics``), which
the worker reads like the inputs. That topic is co-partitioned with the inputs, so its
partition goes to the worker that owns the home partition and its state.

The move has the guarantees of the changelog: the records are queued to the producer before
the fetch is acknowledged, and Faust flushes the producer before it commits the input's
offsets. A crash in between moves a record again; its ``event_id`` makes the second copy a
duplicate. The headers name where the record was first read (the dead-letter topic's names),
so a moved record that is later rejected is dead-lettered with its original place.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from murmurhash2 import murmurhash2

from stream.kafka.partitioner import MURMUR2_SEED
from stream.runtime.batching import TopicWriter
from stream.runtime.seam.producer import Record

ORIGIN_HEADERS = ("source_topic", "source_partition", "source_offset")


def split_off_home(
    records: Sequence[Any], partition: int, partitions: int
) -> tuple[Sequence[Any], dict[int, list[Any]]]:
    """``records`` read from ``partition``: those on their key's home partition (in order),
    and the others by home partition. A record without a key stays (it is rejected there).

    Most producers use the default partitioner, so the common case builds no new list.
    """
    seed, positive = MURMUR2_SEED, 0x7FFFFFFF
    away: dict[int, list[Any]] | None = None
    home: list[Any] | None = None
    for i, record in enumerate(records):
        key = record.key
        if key is None:
            if home is not None:
                home.append(record)
            continue
        target = (murmurhash2(key, seed) & positive) % partitions
        if target == partition:
            if home is not None:
                home.append(record)
            continue
        if away is None:
            away, home = defaultdict(list), list(records[:i])
        away[target].append(record)
    if away is None:
        return records, {}
    assert home is not None
    return home, away


def origin(record: Any, rerouted: bool) -> tuple[bytes, bytes, bytes]:
    """(topic, partition, offset) where ``record`` was first read, as header values."""
    if rerouted:
        found = dict(record.headers or ())  # the last of a repeated name, the one added
        if all(name in found for name in ORIGIN_HEADERS):
            return found["source_topic"], found["source_partition"], found["source_offset"]
    return str(record.topic).encode(), str(record.partition).encode(), str(record.offset).encode()


class Reroutes:
    """Appends records to their home partition of the input's internal ``rerouted`` topic."""

    def __init__(
        self, app: Any, targets: Mapping[str, str], on_failure: Callable[[Exception], None]
    ) -> None:
        self._max_request_size: int = app.conf.producer_max_request_size
        self._writers = {
            topic: TopicWriter(app, functools.partial(str, internal), on_failure)
            for topic, internal in targets.items()
        }

    async def wait_for_room(self) -> None:
        """Wait while the producer has more than a little of these topics queued."""
        for writer in self._writers.values():
            await writer.wait_for_room()

    def send(self, topic: str, away: Mapping[int, Sequence[Any]]) -> None:
        """Queue records read from ``topic`` for their home partitions, with their origin."""
        writer, limit = self._writers[topic], self._max_request_size
        for home, records in away.items():
            out: list[Record] = []
            for r in records:
                # The record's own headers first: where equal names repeat, the last one counts.
                headers = list(r.headers or ())
                headers.extend(zip(ORIGIN_HEADERS, origin(r, False), strict=True))
                if DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, headers) > (
                    limit
                ):
                    # As large as the broker took on the input topic: send it as it came.
                    headers = list(r.headers or ())
                out.append((r.key, r.value, headers))
            writer.send(home, out)
