"""What every mapper returns, and the last step they share: serialise and check the event."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import orjson

from schemas import Rejection, TopicKind, classify

UTC: Final = dt.UTC
MAX_ID: Final = 128
MAX_SOURCE: Final = 64
MAX_CAMPAIGN: Final = 128
MAX_PAGE: Final = 2048


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One Kafka message to produce: a valid contract event on its topic, keyed by its id."""

    kind: TopicKind
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call cannot be mapped: the ``field`` at fault and what is wrong with it.

    Neither holds a value taken from the call, so both are safe to log and to answer with.
    """

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


Result: TypeAlias = OutMessage | Refusal | None
"""A mapped call: the message to produce, why it was refused, or None (nothing to produce)."""


def identifier(value: object) -> str | None:
    """An id as the contract wants it (1–128 characters), from a string or a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_ID:
        return value
    return None


def label_text(value: object) -> str | None:
    """A short text field (team, owner) from a string or a whole number, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()[:MAX_ID]
    return None


def rfc3339(moment: dt.datetime) -> str:
    """``2026-11-27T15:04:05.123Z``: UTC, milliseconds."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


_FIELD_OF_REASON: Final = {"future_timestamp": "timestamp", "unknown_stage": "to_stage"}


def checked(
    kind: TopicKind, key: str, event: dict[str, Any], stages: Collection[str], now: float
) -> OutMessage | Refusal:
    """Serialise ``event`` and hold it to the contract with ``schemas.classify``.

    What the gateway produces is what a worker accepts: a message that ``classify`` would
    dead-letter is refused here instead, naming the contract field at fault.
    """
    value = orjson.dumps(event)
    key_bytes = key.encode()
    verdict = classify(kind, key_bytes, value, stages=stages, now=now)
    if isinstance(verdict, Rejection):
        field = _FIELD_OF_REASON.get(verdict.reason, "event")
        return Refusal(field, f"the {event.get('type')} event is not valid: {verdict.detail}")
    return OutMessage(kind, key_bytes, value)
