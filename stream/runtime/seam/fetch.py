"""Records of the worker's input topics as aiokafka parsed them, without its per-record steps.

aiokafka's consumer thread turns each fetched record into a ``ConsumerRecord``: a dataclass
of eleven fields built by a Python ``__init__``, reached through a Python ``__next__`` and a
Python ``_consumer_record`` call per record, while it holds the GIL the worker's loop needs
(the whole process runs on one core: docs/performance.md, "Where it stands"). For the topics
named with ``use_for(topics)`` (the worker's inputs), ``FunnelPartitionRecords`` yields the
record aiokafka's C parser made (offset, timestamp, key, value, headers), from a generator
that ``FetchResult.getall`` steps directly. Which records are yielded, in which order, and the
fetch position after each are aiokafka's own; tests/stream/runtime/test_seam.py compares both
on real record batches.

Such a record does not name its topic and partition: the worker's batch handler gets them
with each partition's records, and a record that leaves that path (a dead letter, a record
moved to its home partition) is given them by ``located(record, tp)``: a ``FetchedRecord``,
a named tuple with the fields of aiokafka's ``ConsumerRecord``.

``install()`` makes aiokafka's fetcher build its partition records with this class; the
records of every other topic are aiokafka's ``ConsumerRecord`` as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.structs import TopicPartition

# Topics whose records are yielded as parsed (the worker's input topics, once attached).
_light_topics: set[str] = set()


class _Fields(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    checksum: int | None
    headers: tuple[tuple[str, bytes], ...]


class FetchedRecord(_Fields):
    """The fields of aiokafka's ``ConsumerRecord``, as a named tuple."""

    __slots__ = ()

    @property
    def serialized_key_size(self) -> int:
        return -1 if self.key is None else len(self.key)

    @property
    def serialized_value_size(self) -> int:
        return -1 if self.value is None else len(self.value)


_new = tuple.__new__


def located(record: Any, tp: TopicPartition) -> FetchedRecord:
    """``record``, fetched from ``tp``, with its topic and partition."""
    return _new(
        FetchedRecord,
        (
            tp.topic,
            tp.partition,
            record.offset,
            record.timestamp,
            record.timestamp_type,
            record.key,
            record.value,
            record.checksum,
            tuple(record.headers),
        ),
    )


class FunnelPartitionRecords(aiokafka_fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's ``PartitionRecords``, yielding the parsed records of the light topics."""

    next_fetch_offset: int  # aiokafka's: the fetch position after the last record yielded

    def __init__(self, tp: Any, *args: Any, **kwargs: Any) -> None:
        # Set before aiokafka's __init__ starts the record generator.
        self._light = tp.topic in _light_topics
        super().__init__(tp, *args, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        # The generator itself: ``getall`` then steps it without a Python ``__next__``.
        # Once exhausted it stays exhausted, as ``__next__`` would report.
        records: Iterator[Any] | None = self._records_iterator
        return iter(()) if records is None else records

    def _unpack_records(self) -> Iterator[Any]:
        if not self._light or self._isolation_level == aiokafka_fetcher.READ_COMMITTED:
            return super()._unpack_records()  # type: ignore[no-any-return]
        return self._parsed_records()

    def _parsed_records(self) -> Iterator[Any]:
        """aiokafka's ``_unpack_records`` for a consumer that reads uncommitted records
        (Faust's), yielding each record as parsed."""
        records = self._records
        while records.has_next():
            batch = records.next_batch()
            if self._check_crcs and not batch.validate_crc():
                raise CorruptRecordException(f"Invalid CRC - {self._tp}")
            if not batch.is_control_batch:
                for record in batch:
                    offset = record.offset
                    if offset < self.next_fetch_offset:
                        continue  # before the fetch offset, in the first batch fetched
                    self.next_fetch_offset = offset + 1
                    yield record
            # As aiokafka: past the batch's last offset even if compaction removed it.
            self.next_fetch_offset = batch.next_offset


def use_for(topics: Iterable[str]) -> None:
    """Yield the parsed records of ``topics`` from now on."""
    _light_topics.update(topics)


def install() -> None:
    """Make aiokafka's fetcher build partition records with ``FunnelPartitionRecords``."""
    aiokafka_fetcher.PartitionRecords = FunnelPartitionRecords
