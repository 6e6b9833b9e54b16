"""Property tests: no input makes classify() raise, and valid events always pass."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import REJECT_REASONS, Event, LeadCreated, Rejection, StageChanged, Visit, classify
from schemas.classify import TopicKind

NOW = datetime(2026, 11, 27, 16, 0, tzinfo=UTC).timestamp()
STAGES = frozenset({"lead", "mql", "sql", "customer"})
KINDS: tuple[TopicKind, ...] = ("visits", "leads", "transitions")
TYPES = ("visit", "lead_created", "stage_changed")
FIELDS = (
    "event_id",
    "type",
    "occurred_at",
    "schema_version",
    "visitor_id",
    "lead_id",
    "source",
    "campaign",
    "page",
    "team",
    "to_stage",
    "from_stage",
    "owner",
)

_FIELD = "|".join((*FIELDS, r"\?"))
_PROBLEM = rf"(?:{_FIELD}): [a-z0-9_]+"
# Every detail is built from the contract's own words, so none can quote the message.
DETAIL_GRAMMAR = {
    "invalid_json": re.compile(
        r"value is (?:missing|empty|not a JSON object"
        # jiter's messages are fixed phrases, e.g. "control character (\u0000-\u001F) found"
        r"|not valid JSON: [A-Za-z0-9 `,:{}\[\]()\\/+-]+ at line [0-9]+ column [0-9]+)"
    ),
    "wrong_topic_for_type": re.compile(
        r"type (?:visit|lead_created|stage_changed)"
        r" belongs on the (?:visits|leads|transitions) topic"
    ),
    "schema_violation": re.compile(rf"{_PROBLEM}(?:; {_PROBLEM}){{0,2}}(?:; \(\+[0-9]+ more\))?"),
    "unknown_stage": re.compile(r"to_stage is not a configured stage"),
    "key_mismatch": re.compile(
        r"key (?:is missing|is not UTF-8|differs); it must equal the (?:visitor_id|lead_id)"
    ),
    "future_timestamp": re.compile(r"occurred_at is more than 300 s ahead of the clock"),
}

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
timestamps = st.datetimes(
    timezones=st.one_of(
        st.just(UTC),
        st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
    )
).map(lambda d: d.isoformat())
# Values that are sometimes right for a field, so generated objects get past JSON parsing and
# reach the later checks (stage, key, clock) as well as the schema.
plausible = st.one_of(
    json_values,
    st.sampled_from(TYPES),
    st.sampled_from(sorted(STAGES)),
    st.text(min_size=1, max_size=130),
    timestamps,
    st.just("2026-11-27T15:04:05"),
)
objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(), plausible, max_size=16)
keys = st.none() | st.binary(max_size=40) | st.text(max_size=40).map(str.encode)


def check(outcome: Event | Rejection) -> None:
    """An outcome is an event, or a rejection with a known reason and a detail in grammar."""
    assert isinstance(outcome, Visit | LeadCreated | StageChanged | Rejection)
    if isinstance(outcome, Rejection):
        assert outcome.reason in REJECT_REASONS
        assert DETAIL_GRAMMAR[outcome.reason].fullmatch(outcome.detail), outcome


@given(kind=st.sampled_from(KINDS), key=keys, value=st.none() | st.binary(max_size=512))
def test_arbitrary_bytes_never_raise(
    kind: TopicKind, key: bytes | None, value: bytes | None
) -> None:
    check(classify(kind, key, value, stages=STAGES, now=NOW))


@given(kind=st.sampled_from(KINDS), key=keys, value=json_values)
def test_arbitrary_json_never_raises(kind: TopicKind, key: bytes | None, value: Any) -> None:
    check(classify(kind, key, json.dumps(value).encode(), stages=STAGES, now=NOW))


@settings(max_examples=300)
@given(kind=st.sampled_from(KINDS), key=keys, value=objects)
def test_arbitrary_objects_never_raise(
    kind: TopicKind, key: bytes | None, value: dict[str, Any]
) -> None:
    check(classify(kind, key, json.dumps(value).encode(), stages=STAGES, now=NOW))


ids = st.text(min_size=1, max_size=128)
past = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2026, 11, 27, 15, 0), timezones=st.just(UTC)
).map(lambda d: d.isoformat())


@given(
    event_id=ids,
    visitor_id=ids,
    source=st.text(min_size=1, max_size=64),
    occurred_at=past,
    extra=st.dictionaries(st.text().filter(lambda k: k not in FIELDS), json_values, max_size=3),
)
def test_valid_visits_are_accepted(
    event_id: str, visitor_id: str, source: str, occurred_at: str, extra: dict[str, Any]
) -> None:
    payload = {
        **extra,
        "event_id": event_id,
        "type": "visit",
        "occurred_at": occurred_at,
        "visitor_id": visitor_id,
        "source": source,
    }
    event = classify(
        "visits", visitor_id.encode(), json.dumps(payload).encode(), stages=STAGES, now=NOW
    )
    assert isinstance(event, Visit)
    assert (event.event_id, event.visitor_id, event.source) == (event_id, visitor_id, source)
    assert set(event.model_dump()) == set(Visit.model_fields)


@given(lead_id=ids, to_stage=st.sampled_from(sorted(STAGES)), occurred_at=past)
def test_valid_transitions_are_accepted(lead_id: str, to_stage: str, occurred_at: str) -> None:
    payload = {
        "event_id": "e",
        "type": "stage_changed",
        "occurred_at": occurred_at,
        "lead_id": lead_id,
        "to_stage": to_stage,
    }
    event = classify(
        "transitions", lead_id.encode(), json.dumps(payload).encode(), stages=STAGES, now=NOW
    )
    assert isinstance(event, StageChanged)
    assert (event.lead_id, event.to_stage) == (lead_id, to_stage)
