"""The state write-back: a state record too large for a produce request is never sent."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from stream.errors import StateTooLarge
from stream.runtime.batching import WriteBackStore

LIMIT = 1_000_000  # Faust's producer_max_request_size default


def _table() -> Any:
    return SimpleNamespace(
        name="visitor_states",
        key_serializer="raw",
        app=SimpleNamespace(conf=SimpleNamespace(producer_max_request_size=LIMIT)),
        changelog_topic=SimpleNamespace(get_topic_name=lambda: "app-visitor_states-changelog"),
        data=SimpleNamespace(data={}),
    )


def test_a_state_over_the_request_limit_stops_the_batch_naming_table_and_key_length(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Any] = []
    table = _table()
    monkeypatch.setattr(
        "stream.runtime.batching.TopicWriter.send",
        lambda self, partition, records: sent.append((partition, records)),
    )
    store = WriteBackStore(table, lambda exc: None)
    store.partition = 3
    store["small-visitor"] = b"x" * 600_000  # large, but fits: written
    store["private-visitor-id"] = b"x" * LIMIT
    with pytest.raises(StateTooLarge) as refused:
        store.flush()
    message = str(refused.value)
    assert "visitor_states" in message and "key of 18 bytes" in message
    assert "private-visitor-id" not in message and "\n" not in message
    assert sent == [] and table.data.data == {}  # nothing stored, nothing sent
