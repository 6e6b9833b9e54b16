"""The state write-back: a state record too large for a produce request is never sent."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from stream.errors import StateTooLarge
from stream.runtime.batching import WriteBackStore

LIMIT = 1_000_000  # Faust's producer_max_request_size default


def _no_producer() -> Any:
    raise AssertionError("a record was sent")


def _table() -> Any:
    # An app whose producer fails the test if anything reaches it (the store and its writer
    # are compiled: a patched method would not be the one they call).
    app = SimpleNamespace(
        conf=SimpleNamespace(producer_max_request_size=LIMIT),
        producer=SimpleNamespace(_ensure_producer=_no_producer),
    )
    return SimpleNamespace(
        name="visitor_states",
        key_serializer="raw",
        app=app,
        changelog_topic=SimpleNamespace(get_topic_name=lambda: "app-visitor_states-changelog"),
        data=SimpleNamespace(data={}),
    )


def test_a_state_over_the_request_limit_stops_the_batch_naming_table_and_key_length() -> None:
    table = _table()
    store = WriteBackStore(table, lambda exc: None)
    store.partition = 3
    store["small-visitor"] = b"x" * 600_000  # large, but fits: written
    store["private-visitor-id"] = b"x" * LIMIT
    with pytest.raises(StateTooLarge) as refused:
        store.flush()
    message = str(refused.value)
    assert "visitor_states" in message and "key of 18 bytes" in message
    assert "private-visitor-id" not in message and "\n" not in message
    assert table.data.data == {}  # nothing stored (and nothing sent: see _table)
