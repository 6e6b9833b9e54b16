"""Write-back of state tables per batch: one table write per key per batch, not per event.

The worker applies a batch of events to the core, whose stores are ``WriteBackStore`` wrappers
around the Faust tables: reads see the batch's own writes, and ``flush()`` writes each changed
key once, in the context of the last event that changed it, so Faust sends it to the changelog
partition of that event's source partition (the key's own partition).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from faust.streams import _current_event


class SourceContext:
    """Where the Faust table layer looks for the event being processed: the input record's
    topic and partition (``event.message.topic``/``.partition``), for a record handled by the
    consumer fast path, which makes no Faust events."""

    __slots__ = ("__weakref__", "partition", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition

    @property
    def message(self) -> SourceContext:
        return self


class WriteBackStore:
    """A ``KeyValueStore`` over a Faust table that buffers writes until ``flush()``."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._pending: dict[str, tuple[bytes, Any]] = {}
        self.event: Any = None  # the event being applied; set by the worker

    def get(self, key: str) -> bytes | None:
        """The key's value, as written in this batch or else as stored."""
        pending = self._pending.get(key)
        if pending is not None:
            return pending[0]
        # Read the store directly, in the context of the event being applied: RocksDB then
        # looks in that event's partition (the key's own) only, and there is one lookup, not
        # the two of ``table.get`` ("in", then read).
        token = _current_event.set(weakref.ref(self.event) if self.event is not None else None)
        try:
            value: bytes = self._table.data[key]
        except KeyError:
            return None
        finally:
            _current_event.reset(token)
        return value

    def __setitem__(self, key: str, value: bytes) -> None:
        self._pending[key] = (value, self.event)

    def items(self) -> Iterable[tuple[str | bytes, bytes]]:
        """Every stored item (only called between batches, when nothing is pending)."""
        items: Iterable[tuple[str | bytes, bytes]] = self._table.items()
        return items

    def flush(self) -> int:
        """Write every key changed in this batch to the table; returns how many."""
        table, pending = self._table, self._pending
        for key, (value, event) in pending.items():
            # Faust picks the changelog partition (and the RocksDB partition store) from
            # the current event: make it the event that last changed this key.
            token = _current_event.set(weakref.ref(event) if event is not None else None)
            try:
                table[key] = value
            finally:
                _current_event.reset(token)
        n = len(pending)
        pending.clear()
        return n
