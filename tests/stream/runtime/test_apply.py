"""The worker's per-record loop (``stream.runtime.apply.apply_records``): every record applied,
recognised as a duplicate or dead-lettered with its reason, and counted."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest

from stream.core.funnel import Funnel
from stream.core.rules import FunnelRules
from stream.runtime.apply import PROCESSING_ERROR, apply_records

T0 = 1.79e9


class Rec(NamedTuple):
    key: bytes | None
    value: bytes | None
    offset: int


def _visit(event_id: str, visitor_id: str, t: float) -> bytes:
    at = datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
    body = {"event_id": event_id, "type": "visit", "occurred_at": at, "visitor_id": visitor_id}
    return json.dumps({**body, "source": "direct"}).encode()


def test_each_record_is_applied_a_duplicate_or_dead_lettered_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rules = FunnelRules()
    funnel = Funnel(rules, {}, {}, "event")
    visits = funnel.visit_applier(0)

    def apply(event: Any, t: float) -> str:
        if event.event_id == "boom":
            raise RuntimeError("a bug in the core")
        return visits(event, t)

    records = [
        Rec(b"v1", _visit("e1", "v1", T0), 10),
        Rec(b"v1", _visit("e1", "v1", T0), 11),  # sent again
        Rec(b"v2", b"{not json", 12),
        Rec(b"v3", _visit("boom", "v3", T0 + 60), 13),
        Rec(b"v4", _visit("e4", "v4", T0 - 30), 14),
    ]
    rejected: list[tuple[Any, str]] = []
    statuses: dict[str, int] = {}
    with caplog.at_level(logging.ERROR):
        late, watermark = apply_records(
            funnel,
            records,
            "visits",
            apply,
            ("t.visits", 0),
            rules.all_stages,
            T0 + 3600,
            0.0,
            rejected,
            statuses,
        )
    assert statuses == {"applied": 2, "duplicate": 1, "invalid_json": 1, PROCESSING_ERROR: 1}
    assert [(r.offset, reason) for r, reason in rejected] == [
        (12, "invalid_json"),
        (13, PROCESSING_ERROR),
    ]
    assert (late, watermark) == (0, T0)  # the failed event moves no watermark
    assert [r.getMessage() for r in caplog.records] == [
        "processing failed topic=t.visits partition=0 offset=13"
    ]
    assert funnel.visitors.keys() == {"v1", "v4"}
