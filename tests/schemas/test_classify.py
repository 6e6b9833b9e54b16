"""classify() gives each message exactly one outcome, with the precedence of events.md."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from schemas import (
    REJECT_REASONS,
    Event,
    LeadCreated,
    Rejection,
    RejectReason,
    StageChanged,
    TopicKind,
    Visit,
    classify,
)

NOW = datetime(2026, 11, 27, 16, 0, tzinfo=UTC).timestamp()
STAGES = frozenset(
    {"visit", "lead", "mql", "sql", "opportunity", "customer", "contacted", "disqualified"}
)
VISIT: dict[str, Any] = {
    "event_id": "ev-1",
    "type": "visit",
    "occurred_at": "2026-11-27T15:04:05.123Z",
    "visitor_id": "vis-1",
    "source": "organic",
}
LEAD: dict[str, Any] = {
    "event_id": "ev-2",
    "type": "lead_created",
    "occurred_at": "2026-11-27T15:10:00Z",
    "lead_id": "lead-1",
    "source": "paid_search",
}
TRANSITION: dict[str, Any] = {
    "event_id": "ev-3",
    "type": "stage_changed",
    "occurred_at": "2026-11-27T15:20:00Z",
    "lead_id": "lead-1",
    "to_stage": "mql",
}
PAYLOADS: dict[TopicKind, tuple[bytes, dict[str, Any]]] = {
    "visits": (b"vis-1", VISIT),
    "leads": (b"lead-1", LEAD),
    "transitions": (b"lead-1", TRANSITION),
}
AHEAD = "2026-11-27T16:10:00Z"  # ten minutes after NOW: beyond the 5 min tolerance


def raw(payload: dict[str, Any], **changes: Any) -> bytes:
    """``payload`` with ``changes`` applied, as JSON bytes."""
    return json.dumps({**payload, **changes}).encode()


def run(kind: TopicKind, key: bytes | None, value: bytes | None) -> Event | Rejection:
    """classify() with the default stages and a fixed clock."""
    return classify(kind, key, value, stages=STAGES, now=NOW)


def reason(kind: TopicKind, key: bytes | None, value: bytes | None) -> RejectReason:
    """The reason classify() gives; fails the test if the message is accepted."""
    outcome = run(kind, key, value)
    assert isinstance(outcome, Rejection), outcome
    return outcome.reason


def test_reasons_are_listed_in_precedence_order() -> None:
    assert REJECT_REASONS == (
        "invalid_json",
        "wrong_topic_for_type",
        "schema_violation",
        "unknown_stage",
        "key_mismatch",
        "future_timestamp",
    )
    assert set(REJECT_REASONS) == set(get_args(RejectReason))


@pytest.mark.parametrize(
    ("kind", "model"),
    [("visits", Visit), ("leads", LeadCreated), ("transitions", StageChanged)],
)
def test_valid_message_becomes_its_event(kind: TopicKind, model: type[Visit]) -> None:
    key, payload = PAYLOADS[kind]
    event = run(kind, key, raw(payload))
    assert isinstance(event, model)
    assert event.event_id == payload["event_id"]


def test_extra_fields_are_accepted_and_dropped() -> None:
    event = run("visits", b"vis-1", raw(VISIT, email="jane@example.com", name="Jane"))
    assert isinstance(event, Visit)
    assert "email" not in event.model_dump()
    assert "name" not in event.model_dump()


# --- one crafted message per reason ---------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,  # tombstone
        b"",
        b"   ",
        b"{",
        b"not json",
        b"[]",
        b"[1, 2]",
        b'"a string"',
        b"42",
        b"null",
        b"\xff\xfe{}",  # not UTF-8
        json.dumps({**VISIT, "source": "caf\u00e9"}, ensure_ascii=False).encode("latin-1"),
        b"\xef\xbb\xbf" + raw(VISIT),  # UTF-8 byte order mark
        json.dumps(VISIT).encode("utf-16"),
    ],
)
def test_invalid_json(value: bytes | None) -> None:
    for kind in PAYLOADS:
        assert reason(kind, b"vis-1", value) == "invalid_json"


def test_wrong_topic_for_type() -> None:
    assert reason("visits", b"lead-1", raw(LEAD)) == "wrong_topic_for_type"
    assert reason("leads", b"lead-1", raw(TRANSITION)) == "wrong_topic_for_type"
    assert reason("transitions", b"vis-1", raw(VISIT)) == "wrong_topic_for_type"


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "purchase"},  # unknown type
        {"type": None},
        {"type": 3},
        {"type": "Visit"},
        {"occurred_at": "2026-11-27T15:04:05"},  # naive timestamp
        {"occurred_at": 1795791845},
        {"source": 7},  # a number where a string is expected
        {"visitor_id": ""},
        {"schema_version": "1"},
    ],
)
def test_schema_violation(changes: dict[str, Any]) -> None:
    assert reason("visits", b"vis-1", raw(VISIT, **changes)) == "schema_violation"


def test_missing_field_is_schema_violation() -> None:
    value = json.dumps({k: v for k, v in VISIT.items() if k != "source"}).encode()
    assert reason("visits", b"vis-1", value) == "schema_violation"
    assert reason("visits", b"vis-1", b"{}") == "schema_violation"


def test_unknown_stage() -> None:
    value = raw(TRANSITION, to_stage="negotiation")
    assert reason("transitions", b"lead-1", value) == "unknown_stage"
    event = classify("transitions", b"lead-1", value, stages={"negotiation"}, now=NOW)
    assert isinstance(event, StageChanged)


def test_from_stage_is_not_checked_against_stages() -> None:
    event = run("transitions", b"lead-1", raw(TRANSITION, from_stage="legacy-stage"))
    assert isinstance(event, StageChanged)


@pytest.mark.parametrize("key", [None, b"", b"vis-2", b"VIS-1", b"vis-1 ", b"\xff\xfe"])
def test_key_mismatch_on_visits(key: bytes | None) -> None:
    assert reason("visits", key, raw(VISIT)) == "key_mismatch"


def test_key_must_be_lead_id_for_leads_and_transitions() -> None:
    assert reason("leads", b"vis-1", raw(LEAD, visitor_id="vis-1")) == "key_mismatch"
    assert reason("transitions", None, raw(TRANSITION)) == "key_mismatch"


def test_key_is_compared_as_utf8_text() -> None:
    event = run("visits", "visiteur-é".encode(), raw(VISIT, visitor_id="visiteur-é"))
    assert isinstance(event, Visit)


def test_future_timestamp_tolerates_five_minutes() -> None:
    at_limit = datetime.fromtimestamp(NOW + 300, UTC).isoformat()
    just_over = datetime.fromtimestamp(NOW + 300.001, UTC).isoformat()
    assert isinstance(run("visits", b"vis-1", raw(VISIT, occurred_at=at_limit)), Visit)
    assert reason("visits", b"vis-1", raw(VISIT, occurred_at=just_over)) == "future_timestamp"


def test_future_timestamp_uses_the_wall_clock_by_default() -> None:
    soon = datetime.fromtimestamp(time.time() + 60, UTC).isoformat()
    later = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    assert isinstance(classify("visits", b"vis-1", raw(VISIT, occurred_at=soon), stages=()), Visit)
    outcome = classify("visits", b"vis-1", raw(VISIT, occurred_at=later), stages=())
    assert isinstance(outcome, Rejection)
    assert outcome.reason == "future_timestamp"


def test_old_and_far_past_timestamps_are_accepted() -> None:
    value = raw(VISIT, occurred_at="0001-01-01T00:00:00+01:00")
    assert isinstance(run("visits", b"vis-1", value), Visit)


def test_offset_is_applied_before_the_future_check() -> None:
    # 17:00+01:00 is 16:00Z, i.e. NOW: not in the future despite the local clock reading.
    assert isinstance(
        run("visits", b"vis-1", raw(VISIT, occurred_at="2026-11-27T17:00:00+01:00")), Visit
    )
    assert reason("visits", b"vis-1", raw(VISIT, occurred_at="2026-11-27T16:00:00-01:00")) == (
        "future_timestamp"
    )


# --- precedence when several reasons apply --------------------------------------------


def test_wrong_topic_beats_missing_field() -> None:
    value = json.dumps({"type": "lead_created"}).encode()
    assert reason("visits", None, value) == "wrong_topic_for_type"


def test_wrong_topic_beats_ill_typed_fields() -> None:
    value = raw(LEAD, occurred_at="2026-11-27T15:04:05", lead_id=5)
    assert reason("transitions", b"other", value) == "wrong_topic_for_type"


def test_invalid_json_beats_everything() -> None:
    value = raw(LEAD)[:-1]  # truncated: also wrong topic for visits
    assert reason("visits", None, value) == "invalid_json"


def test_schema_violation_beats_unknown_stage_key_and_future() -> None:
    value = raw(TRANSITION, to_stage="nowhere", occurred_at=AHEAD, owner=7)
    assert reason("transitions", b"someone-else", value) == "schema_violation"


def test_naive_timestamp_is_schema_violation_even_with_other_faults() -> None:
    value = raw(TRANSITION, to_stage="nowhere", occurred_at="2099-01-01T00:00:00")
    assert reason("transitions", None, value) == "schema_violation"


def test_unknown_stage_beats_key_mismatch_and_future() -> None:
    value = raw(TRANSITION, to_stage="nowhere", occurred_at=AHEAD)
    assert reason("transitions", b"someone-else", value) == "unknown_stage"


def test_key_mismatch_beats_future_timestamp() -> None:
    assert reason("visits", b"vis-2", raw(VISIT, occurred_at=AHEAD)) == "key_mismatch"
    assert reason("leads", None, raw(LEAD, occurred_at=AHEAD)) == "key_mismatch"


# --- details are safe to log ----------------------------------------------------------

MARKER = "ZQX-personal-7731"


@pytest.mark.parametrize(
    ("kind", "key", "value"),
    [
        ("visits", b"vis-1", f'{{"type": "visit", "email": "{MARKER}"'.encode()),
        ("visits", b"vis-1", f'["{MARKER}"]'.encode()),
        ("visits", b"vis-1", raw(VISIT, visitor_id=MARKER * 20)),
        ("visits", b"vis-1", raw(VISIT, type=MARKER)),
        ("visits", b"vis-1", raw(VISIT, source=MARKER * 10, page=7, campaign=[MARKER])),
        ("visits", b"vis-1", raw(VISIT, occurred_at=MARKER)),
        ("visits", b"vis-1", raw(VISIT, occurred_at=f"2026-11-27T15:04:05{MARKER}")),
        ("leads", b"lead-1", raw(LEAD, team=MARKER, **{MARKER: MARKER, "lead_id": 3})),
        ("leads", b"lead-1", raw({MARKER: 1}, type="visit")),
        ("transitions", b"lead-1", raw(TRANSITION, to_stage=MARKER)),
        ("transitions", MARKER.encode(), raw(TRANSITION)),
        ("transitions", b"lead-1", raw(TRANSITION, owner=MARKER, occurred_at=AHEAD)),
    ],
)
def test_detail_never_contains_payload_values(
    kind: TopicKind, key: bytes | None, value: bytes
) -> None:
    outcome = run(kind, key, value)
    assert isinstance(outcome, Rejection)
    assert outcome.detail
    assert MARKER.lower() not in outcome.detail.lower()


def test_detail_names_the_failing_fields() -> None:
    outcome = run("visits", b"vis-1", raw(VISIT, occurred_at="2026-11-27T15:04:05", source=1))
    assert outcome == Rejection(
        "schema_violation", "occurred_at: timezone_aware; source: string_type"
    )


def test_detail_is_capped_for_messages_with_many_errors() -> None:
    outcome = run("transitions", b"lead-1", b'{"type": "stage_changed"}')
    assert isinstance(outcome, Rejection)
    assert outcome.reason == "schema_violation"
    assert outcome.detail.endswith("(+1 more)")


def test_rejection_is_frozen() -> None:
    rejection = Rejection("invalid_json", "value is empty")
    with pytest.raises(AttributeError):
        rejection.reason = "key_mismatch"  # type: ignore[misc]


# --- hostile input never escapes as an exception --------------------------------------


@pytest.mark.parametrize("depth", [50, 1_000, 100_000])
def test_deeply_nested_json_is_rejected_not_raised(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    as_extra = raw(VISIT)[:-1] + f', "x": {nested}}}'.encode()
    for value in (nested.encode(), as_extra):
        outcome = run("visits", b"vis-1", value)
        assert isinstance(outcome, Visit | Rejection)
    assert reason("visits", b"vis-1", nested.encode()) == "invalid_json"


def test_huge_values_are_rejected_not_raised() -> None:
    huge_string = raw(VISIT, visitor_id="v" * 5_000_000)
    assert reason("visits", b"vis-1", huge_string) == "schema_violation"
    huge_number = raw(VISIT)[:-1] + b', "n": ' + b"9" * 100_000 + b"}"
    assert isinstance(run("visits", b"vis-1", huge_number), Visit | Rejection)


def test_nan_and_lone_surrogates_do_not_raise() -> None:
    for value in (
        raw(VISIT)[:-1] + b', "x": NaN}',
        raw(VISIT, source=float("inf")),
        raw(VISIT)[:-1] + b', "x": "\\ud800"}',
        raw(VISIT, visitor_id="\ud800"),
    ):
        assert isinstance(run("visits", b"vis-1", value), Visit | Rejection)
