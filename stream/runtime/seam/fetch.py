"""Records of the worker's input topics built without aiokafka's per-record Python steps.

aiokafka's consumer thread turns each fetched record into a ``ConsumerRecord``: a dataclass
of eleven fields built by a Python ``__init__``, reached through a Python ``__next__`` and a
Python ``_consumer_record`` call per record, while it holds the GIL the worker's loop needs
(8-12 % of the worker's samples, docs/performance.md). For the topics named with
``use_for(topics)`` (the worker's inputs), ``FunnelPartitionRecords`` yields
``FetchedRecord`` instead: a named tuple with the same fields, made by one C call
(``tuple.__new__``), its sizes computed when read; and ``FetchResult.getall`` iterates the
record generator directly. Which records are yielded, in which order, and the fetch position
after each are aiokafka's own (its generator is reused as it is).
tests/stream/runtime/test_seam.py compares both, field by field, on real record batches.

``install()`` makes aiokafka's fetcher build its partition records with this class; the
records of every other topic are aiokafka's ``ConsumerRecord`` as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from aiokafka.consumer import fetcher as aiokafka_fetcher

# Topics whose records are FetchedRecord (the worker's input topics, once attached).
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


class FunnelPartitionRecords(aiokafka_fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's ``PartitionRecords`` with ``FetchedRecord`` for the light topics."""

    def __init__(self, tp: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tp, *args, **kwargs)
        self._light = tp.topic in _light_topics

    def __iter__(self) -> Iterator[Any]:
        # The generator itself: ``getall`` then steps it without a Python ``__next__``.
        # Once exhausted it stays exhausted, as ``__next__`` would report.
        records: Iterator[Any] | None = self._records_iterator
        return iter(()) if records is None else records

    def _consumer_record(self, tp: Any, record: Any) -> Any:
        if not self._light:
            return super()._consumer_record(tp, record)
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


def use_for(topics: Iterable[str]) -> None:
    """Build ``FetchedRecord`` for ``topics`` from now on."""
    _light_topics.update(topics)


def install() -> None:
    """Make aiokafka's fetcher build partition records with ``FunnelPartitionRecords``."""
    aiokafka_fetcher.PartitionRecords = FunnelPartitionRecords
