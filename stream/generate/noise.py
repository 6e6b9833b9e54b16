"""Malformed variants of a valid message, one per rejection reason of events.md ("Bad input").

Each variant is built from a real event's JSON text with a fresh ``event_id``, so a bad message
never shares its id with a good one. The functions are pure: the caller supplies every random
choice, which keeps the generator's stream reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream.config.topics import TopicNames

UNKNOWN_STAGES = ("negotiation", "won", "closed_lost", "nurture")


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """What a malformed variant is made from: a valid event as the generator wrote it."""

    topic: str
    key: str
    value: str
    type: str
    event_id: str
    occurred_at: str


def malformed_variant(
    kind: str,
    event: ValidEvent,
    *,
    topics: TopicNames,
    choice: float,
    new_event_id: str,
    new_id: str,
    future_occurred_at: str,
) -> tuple[str, str, bytes]:
    """Return ``(topic, key, value)`` of a message that the processor must reject as ``kind``.

    ``choice`` in [0, 1) picks among the variants of one kind; ``new_id`` is an unused visitor or
    lead id (for ``key_mismatch`` and a made-up stage change); ``future_occurred_at`` replaces the
    event time for ``future_timestamp``.
    """
    value = event.value.replace(event.event_id, new_event_id, 1)
    if kind == "invalid_json":
        return event.topic, event.key, _invalid_json(value, choice, new_event_id)
    if kind == "wrong_topic_for_type":
        wrong = {
            "visit": topics.leads,
            "lead_created": topics.transitions,
            "stage_changed": topics.visits,
        }[event.type]
        return wrong, event.key, value.encode()
    if kind == "schema_violation":
        return event.topic, event.key, _schema_violation(event, value, choice).encode()
    if kind == "unknown_stage":
        stage = UNKNOWN_STAGES[int(choice * len(UNKNOWN_STAGES))]
        if event.type == "stage_changed":
            start = value.index('"to_stage":"') + len('"to_stage":"')
            end = value.index('"', start)
            return event.topic, event.key, (value[:start] + stage + value[end:]).encode()
        made_up = (
            f'{{"event_id":"{new_event_id}","type":"stage_changed","schema_version":1,'
            f'"occurred_at":"{event.occurred_at}","lead_id":"{new_id}",'
            f'"from_stage":"lead","to_stage":"{stage}"}}'
        )
        return topics.transitions, new_id, made_up.encode()
    if kind == "key_mismatch":
        return event.topic, new_id, value.encode()
    if kind == "future_timestamp":
        shifted = value.replace(event.occurred_at, future_occurred_at, 1)
        return event.topic, event.key, shifted.encode()
    raise ValueError(f"unknown malformed kind {kind!r}")


def _invalid_json(value: str, choice: float, new_event_id: str) -> bytes:
    """Truncated JSON, JSON that is not an object, or bytes that are not UTF-8."""
    if choice < 0.6:
        cut = 1 + int(choice / 0.6 * (len(value) - 2))
        return value[:cut].encode()
    if choice < 0.8:
        return f'["{new_event_id}"]'.encode()
    return b"\xff\xfe" + value.encode()


def _schema_violation(event: ValidEvent, value: str, choice: float) -> str:
    """A missing required field, a naive timestamp, or an ill-typed field."""
    if choice < 0.4:
        field = "visitor_id" if event.type == "visit" else "lead_id"
        return value.replace(f'"{field}":', f'"{field}_":', 1)
    if choice < 0.8:
        naive = event.occurred_at.removesuffix("Z")
        return value.replace(f'"{event.occurred_at}"', f'"{naive}"', 1)
    return value.replace('"schema_version":1', '"schema_version":"one"', 1)
