"""The event models read the contract of events.md exactly, straight from JSON bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import EVENT_MODELS, LeadCreated, StageChanged, Visit

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
    "occurred_at": "2026-11-27T15:04:05+01:00",
    "lead_id": "lead-1",
    "source": "paid_search",
}
TRANSITION: dict[str, Any] = {
    "event_id": "ev-3",
    "type": "stage_changed",
    "occurred_at": "2026-11-27T16:00:00-05:00",
    "lead_id": "lead-1",
    "to_stage": "mql",
}


def raw(payload: dict[str, Any], **changes: Any) -> bytes:
    """``payload`` with ``changes`` applied, as JSON bytes."""
    return json.dumps({**payload, **changes}).encode()


def without(payload: dict[str, Any], field: str) -> bytes:
    """``payload`` without ``field``, as JSON bytes."""
    return json.dumps({k: v for k, v in payload.items() if k != field}).encode()


def error_types(exc: pytest.ExceptionInfo[ValidationError]) -> set[tuple[object, str]]:
    """(field, error type) of every error a validation raised."""
    return {(e["loc"][0] if e["loc"] else None, e["type"]) for e in exc.value.errors()}


def test_minimal_visit_parses_with_defaults() -> None:
    visit = Visit.model_validate_json(raw(VISIT))
    assert visit.visitor_id == "vis-1"
    assert visit.source == "organic"
    assert visit.occurred_at == datetime(2026, 11, 27, 15, 4, 5, 123000, tzinfo=UTC)
    assert (visit.campaign, visit.page, visit.schema_version) == (None, None, 1)
    assert visit.message_key == "vis-1"


def test_full_visit_keeps_every_contract_field() -> None:
    visit = Visit.model_validate_json(
        raw(VISIT, campaign="black-friday", page="/pricing", schema_version=1)
    )
    assert (visit.campaign, visit.page) == ("black-friday", "/pricing")


def test_lead_created_defaults_team_and_keeps_offset() -> None:
    lead = LeadCreated.model_validate_json(raw(LEAD))
    assert lead.team == "default"
    assert lead.visitor_id is None
    assert lead.occurred_at.utcoffset() == timedelta(hours=1)
    assert lead.occurred_at == datetime(2026, 11, 27, 14, 4, 5, tzinfo=UTC)
    assert lead.message_key == "lead-1"


def test_lead_created_with_team_and_visitor() -> None:
    lead = LeadCreated.model_validate_json(raw(LEAD, team="emea", visitor_id="vis-1"))
    assert (lead.team, lead.visitor_id) == ("emea", "vis-1")


def test_stage_changed_optional_fields_default_to_none() -> None:
    change = StageChanged.model_validate_json(raw(TRANSITION))
    assert change.to_stage == "mql"
    assert (change.from_stage, change.team, change.owner) == (None, None, None)
    assert change.message_key == "lead-1"


def test_stage_changed_with_all_fields() -> None:
    change = StageChanged.model_validate_json(
        raw(TRANSITION, from_stage="lead", team="emea", owner="rep-7")
    )
    assert (change.from_stage, change.team, change.owner) == ("lead", "emea", "rep-7")


def test_extra_fields_are_ignored_and_never_stored() -> None:
    visit = Visit.model_validate_json(raw(VISIT, email="jane@example.com", phone="+3312345678"))
    dumped = visit.model_dump()
    assert "email" not in dumped
    assert "phone" not in dumped
    assert "jane@example.com" not in repr(visit)
    assert visit.model_extra is None


def test_models_are_frozen() -> None:
    visit = Visit.model_validate_json(raw(VISIT))
    with pytest.raises(ValidationError):
        visit.source = "paid_search"


@pytest.mark.parametrize(
    "timestamp",
    [
        "2026-11-27T15:04:05Z",
        "2026-11-27T15:04:05.123456Z",
        "2026-11-27T15:04:05+05:30",
        "2026-11-27T15:04:05-00:00",
        "2026-11-27 15:04:05z",  # RFC 3339 allows a space and lower case
    ],
)
def test_rfc3339_timestamps_with_offset_are_accepted(timestamp: str) -> None:
    visit = Visit.model_validate_json(raw(VISIT, occurred_at=timestamp))
    assert visit.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    ("timestamp", "error"),
    [
        ("2026-11-27T15:04:05", "timezone_aware"),  # naive
        ("2026-11-27T15:04:05.123", "timezone_aware"),
        ("1795791845", "rfc3339_timestamp"),  # pydantic alone would read a Unix time
        (1795791845, "rfc3339_timestamp"),
        ("2026-11-27", "rfc3339_timestamp"),
        ("27/11/2026 15:04", "rfc3339_timestamp"),
        ("٢٠٢٦-11-27T15:04:05Z", "rfc3339_timestamp"),  # non-ASCII digits
        (None, "rfc3339_timestamp"),
    ],
)
def test_other_timestamps_are_refused(timestamp: object, error: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Visit.model_validate_json(raw(VISIT, occurred_at=timestamp))
    assert error_types(exc) == {("occurred_at", error)}


# The timestamp check runs in pydantic-core for JSON and in Python for Python input
# (schemas/events.py, _Rfc3339): both must give the same answers.
_TIMESTAMP_TEXT = st.one_of(
    st.text(max_size=40),
    st.from_regex(
        r"[0-9٢]{4}-[0-9]{2}-[0-9]{2}[Tt z][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{0,9})?"
        r"([Zz]|[+-][0-9]{2}:?[0-9]{2})?\n?",
        fullmatch=True,
    ),
)


def _outcome(validate: Any, payload: Any) -> object:
    try:
        return validate(payload)
    except ValidationError as exc:
        return {(e["loc"][0] if e["loc"] else None, e["type"]) for e in exc.errors()}


@settings(max_examples=500, deadline=None)
@given(timestamp=st.one_of(_TIMESTAMP_TEXT, st.integers(), st.floats(), st.none()))
def test_json_and_python_input_get_the_same_timestamp_answer(timestamp: object) -> None:
    from_json = _outcome(Visit.model_validate_json, raw(VISIT, occurred_at=timestamp))
    from_python = _outcome(Visit.model_validate, {**VISIT, "occurred_at": timestamp})
    assert from_json == from_python


def test_python_input_may_give_a_datetime() -> None:
    at = datetime(2026, 11, 27, 15, 4, 5, tzinfo=UTC)
    assert Visit.model_validate({**VISIT, "occurred_at": at}).occurred_at == at
    with pytest.raises(ValidationError) as exc:
        Visit.model_validate({**VISIT, "occurred_at": at.replace(tzinfo=None)})
    assert error_types(exc) == {("occurred_at", "timezone_aware")}


def test_impossible_dates_are_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        Visit.model_validate_json(raw(VISIT, occurred_at="2026-02-30T10:00:00Z"))
    assert {field for field, _ in error_types(exc)} == {"occurred_at"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("visitor_id", 42),
        ("source", 1.5),
        ("event_id", True),
        ("campaign", ["a"]),
        ("page", {"path": "/"}),
        ("schema_version", "1"),
        ("schema_version", 1.0),
        ("schema_version", True),
        ("schema_version", None),  # null only where the published schema allows it
    ],
)
def test_wrong_json_types_are_refused_not_coerced(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as exc:
        Visit.model_validate_json(raw(VISIT, **{field: value}))
    assert {f for f, _ in error_types(exc)} == {field}


def test_lead_team_must_be_a_string_when_present() -> None:
    with pytest.raises(ValidationError) as exc:
        LeadCreated.model_validate_json(raw(LEAD, team=None))
    assert error_types(exc) == {("team", "string_type")}


def test_nullable_optional_fields_accept_null() -> None:
    visit = Visit.model_validate_json(raw(VISIT, campaign=None, page=None))
    change = StageChanged.model_validate_json(
        raw(TRANSITION, from_stage=None, team=None, owner=None)
    )
    assert (visit.campaign, change.team) == (None, None)


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("event_id", "e" * 128, "e" * 129),
        ("visitor_id", "v" * 128, "v" * 129),
        ("source", "s" * 64, "s" * 65),
        ("campaign", "c" * 128, "c" * 129),
        ("page", "/" * 2048, "/" * 2049),
    ],
)
def test_visit_length_limits(field: str, good: str, bad: str) -> None:
    assert getattr(Visit.model_validate_json(raw(VISIT, **{field: good})), field) == good
    with pytest.raises(ValidationError) as exc:
        Visit.model_validate_json(raw(VISIT, **{field: bad}))
    assert error_types(exc) == {(field, "string_too_long")}


@pytest.mark.parametrize("field", ["event_id", "visitor_id", "source"])
def test_required_visit_strings_must_not_be_empty(field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Visit.model_validate_json(raw(VISIT, **{field: ""}))
    assert error_types(exc) == {(field, "string_too_short")}


@pytest.mark.parametrize(
    ("field", "bad"),
    [("lead_id", "l" * 129), ("lead_id", ""), ("visitor_id", ""), ("campaign", "c" * 129)],
)
def test_lead_created_limits(field: str, bad: str) -> None:
    with pytest.raises(ValidationError) as exc:
        LeadCreated.model_validate_json(raw(LEAD, **{field: bad}))
    assert {f for f, _ in error_types(exc)} == {field}


@pytest.mark.parametrize(
    ("model", "payload", "field"),
    [
        (Visit, VISIT, "event_id"),
        (Visit, VISIT, "type"),
        (Visit, VISIT, "occurred_at"),
        (Visit, VISIT, "visitor_id"),
        (Visit, VISIT, "source"),
        (LeadCreated, LEAD, "lead_id"),
        (LeadCreated, LEAD, "source"),
        (StageChanged, TRANSITION, "lead_id"),
        (StageChanged, TRANSITION, "to_stage"),
    ],
)
def test_required_fields(model: type[Visit], payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        model.model_validate_json(without(payload, field))
    assert error_types(exc) == {(field, "missing")}


def test_type_must_match_the_model() -> None:
    with pytest.raises(ValidationError) as exc:
        Visit.model_validate_json(raw(VISIT, type="lead_created"))
    assert error_types(exc) == {("type", "literal_error")}


def test_validation_errors_do_not_echo_payload_values() -> None:
    with pytest.raises(ValidationError) as exc:
        Visit.model_validate_json(raw(VISIT, visitor_id="x" * 200 + "SECRET-MARKER"))
    assert "SECRET-MARKER" not in str(exc.value)


def test_event_models_map_type_names_to_models() -> None:
    assert dict(EVENT_MODELS) == {
        "visit": Visit,
        "lead_created": LeadCreated,
        "stage_changed": StageChanged,
    }
    for name, model in EVENT_MODELS.items():
        assert model.model_fields["type"].annotation.__args__ == (name,)  # type: ignore[union-attr]


def test_models_can_be_built_in_python_with_aware_datetimes() -> None:
    when = datetime(2026, 11, 27, 15, 0, tzinfo=timezone(timedelta(hours=2)))
    visit = Visit(event_id="e", type="visit", occurred_at=when, visitor_id="v", source="s")
    assert visit.occurred_at == when
    with pytest.raises(ValidationError):
        Visit(
            event_id="e",
            type="visit",
            occurred_at=datetime(2026, 11, 27, 15, 0),
            visitor_id="v",
            source="s",
        )
