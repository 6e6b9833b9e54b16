"""Turn one consumed Kafka message into an event or a rejection (events.md, "Bad input").

This is the hot path of every worker. A valid message is parsed exactly once, straight
from its bytes, by the model of its topic; only a message that fails is diagnosed, from the
errors pydantic already collected, so a bad message is not parsed twice either. Nothing a
message contains makes ``classify`` raise, and a rejection's detail names fields and error
kinds only, never a value from the payload.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, final

from pydantic import ValidationError
from pydantic_core import ErrorDetails, TzInfo

from schemas.events import Event, LeadCreated, StageChanged, Visit

TopicKind: TypeAlias = Literal["visits", "leads", "transitions"]
"""Which input topic a message came from; the caller maps real topic names to these."""

RejectReason: TypeAlias = Literal[
    "invalid_json",
    "wrong_topic_for_type",
    "schema_violation",
    "unknown_stage",
    "key_mismatch",
    "future_timestamp",
]
"""The stable reason strings written to the dead-letter topic."""

REJECT_REASONS: Final[tuple[RejectReason, ...]] = (
    "invalid_json",
    "wrong_topic_for_type",
    "schema_violation",
    "unknown_stage",
    "key_mismatch",
    "future_timestamp",
)
"""Every reason, in precedence order: when several apply, the first is given."""

FUTURE_TOLERANCE_SECONDS: Final = 300.0
"""How far ahead of the wall clock ``occurred_at`` may be before it is refused."""

_MODEL_FOR_KIND: Final[Mapping[str, type[Event]]] = MappingProxyType(
    {"visits": Visit, "leads": LeadCreated, "transitions": StageChanged}
)
_KIND_FOR_TYPE: Final[Mapping[str, TopicKind]] = MappingProxyType(
    {"visit": "visits", "lead_created": "leads", "stage_changed": "transitions"}
)
_FIELDS_OF: Final[Mapping[type[Event], frozenset[str]]] = MappingProxyType(
    {model: frozenset(model.model_fields) for model in _MODEL_FOR_KIND.values()}
)
_MAX_PROBLEMS_SHOWN: Final = 3
# pydantic's UTC: comparing datetimes with the same tzinfo object skips the offset lookups.
_UTC: Final = TzInfo(0)
# The last ``now`` seen and the latest ``occurred_at`` accepted then: a worker passes one
# ``now`` per fetch, so the limit is built once per fetch, not per message.
_latest_allowed: list[Any] = [None, None]


@final  # callers may test ``type(r) is Rejection`` (the worker does, per message)
@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused: a stable ``reason`` and a short ``detail`` for operators.

    The detail names fields and error kinds only (``occurred_at: timezone_aware``), never a
    value taken from the message, so it is safe to log and to put in dead-letter headers.
    """

    reason: RejectReason
    detail: str


def classify(
    topic_kind: TopicKind,
    key: bytes | None,
    value: bytes | None,
    *,
    stages: Collection[str],
    now: float | None = None,
) -> Event | Rejection:
    """Return the event carried by a message from ``topic_kind``, or why it is rejected.

    The checks and their precedence follow events.md: ``invalid_json``,
    ``wrong_topic_for_type``, ``schema_violation``, ``unknown_stage`` (``to_stage`` not in
    ``stages``; pass a frozenset, it is looked up once per transition), ``key_mismatch`` (the
    key, as UTF-8, must equal the event's ``visitor_id`` or ``lead_id``) and
    ``future_timestamp`` (more than 300 s after ``now``, by default the wall clock, in
    seconds since the epoch). An unknown ``topic_kind`` is a programming error and raises
    ``KeyError``; no message content raises.
    """
    model = _MODEL_FOR_KIND[topic_kind]
    if not value:
        return Rejection("invalid_json", "value is missing" if value is None else "value is empty")
    try:
        # What ``model.model_validate_json`` calls, without its wrapper (the hot path).
        event: Event = model.__pydantic_validator__.validate_json(value)
    except ValidationError as exc:
        return _diagnose(model, exc)
    if isinstance(event, StageChanged) and event.to_stage not in stages:
        return Rejection("unknown_stage", "to_stage is not a configured stage")
    expected = event.message_key
    try:
        key_matches = key == expected.encode()  # the usual case, without decoding the key
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: no key can match
        key_matches = False
    if not key_matches:
        key_problem = _key_problem(key, expected)
        if key_problem is not None:
            key_field = "visitor_id" if isinstance(event, Visit) else "lead_id"
            return Rejection("key_mismatch", f"{key_problem}; it must equal the {key_field}")
    if now is None:
        now = time.time()
    seen_now, latest = _latest_allowed
    if now != seen_now:
        latest = datetime.fromtimestamp(now + FUTURE_TOLERANCE_SECONDS, _UTC)
        _latest_allowed[:] = (now, latest)
    if event.occurred_at > latest:
        return Rejection(
            "future_timestamp",
            f"occurred_at is more than {FUTURE_TOLERANCE_SECONDS:.0f} s ahead of the clock",
        )
    return event


def _key_problem(key: bytes | None, expected: str) -> str | None:
    """Say what is wrong with the message key, or None when it equals ``expected``."""
    if key is None:
        return "key is missing"
    try:
        decoded = key.decode("utf-8")
    except UnicodeDecodeError:
        return "key is not UTF-8"
    if decoded != expected:
        return "key differs"
    return None


def _diagnose(model: type[Event], exc: ValidationError) -> Rejection:
    """Pick the reason of highest precedence among the errors pydantic reported.

    The errors are listed without their inputs and contexts, which pydantic would otherwise
    copy for every error (a poison storm is thousands a second); the two checks that need one
    ask for it again.
    """
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    for i, error in enumerate(errors):
        if error["type"] == "json_invalid":
            # jiter's message says what broke and where (line, column), never what was there.
            ctx = exc.errors(include_url=False, include_input=False)[i].get("ctx") or {}
            return Rejection("invalid_json", f"value is not valid JSON: {ctx.get('error', '?')}")
        if not error["loc"]:
            return Rejection("invalid_json", "value is not a JSON object")
    for i, error in enumerate(errors):
        if error["loc"] == ("type",):
            claimed = exc.errors(include_url=False, include_context=False)[i]["input"]
            # Named in the detail only once known to be one of the three type names.
            if isinstance(claimed, str) and claimed in _KIND_FOR_TYPE:
                return Rejection(
                    "wrong_topic_for_type",
                    f"type {claimed} belongs on the {_KIND_FOR_TYPE[claimed]} topic",
                )
    return Rejection("schema_violation", _summarise(_FIELDS_OF[model], errors))


def _summarise(fields: frozenset[str], errors: list[ErrorDetails]) -> str:
    """``field: error_type`` for the first few errors; field names are the model's own."""
    problems = []
    for error in errors[:_MAX_PROBLEMS_SHOWN]:
        field = error["loc"][0]
        # Only the model's field names may appear, so no payload text can slip through.
        name = field if isinstance(field, str) and field in fields else "?"
        problems.append(f"{name}: {error['type']}")
    hidden = len(errors) - _MAX_PROBLEMS_SHOWN
    if hidden > 0:
        problems.append(f"(+{hidden} more)")
    return "; ".join(problems)
