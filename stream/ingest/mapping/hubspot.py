"""HubSpot contact webhooks → contract events, and HubSpot's v3 request signature.

A webhook request holds a JSON array of events. ``contact.creation`` → ``lead_created``;
``contact.propertyChange`` of ``lifecyclestage`` → ``stage_changed`` to the funnel stage the
configuration maps HubSpot's value to (values listed as ignored map to nothing). The lead id
is the contact's ``objectId``, the event time ``occurredAt`` (milliseconds since the epoch).
HubSpot's ``eventId`` is not unique across subscription types, so the event id is
``hubspot-<portalId>-<subscriptionType>-<eventId>``: the same for every delivery attempt.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any, Final

from stream.config.ingest import HubSpotMapping
from stream.ingest.mapping.common import UTC, Refusal, Result, checked, identifier, rfc3339

MAX_AGE_S: Final = 300.0
"""HubSpot's rule: a request whose timestamp is older than 5 minutes is refused."""

# HubSpot percent-decodes these in the request URI before signing (its documented table).
_URI_DECODE: Final = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


class SignatureError(ValueError):
    """A HubSpot request whose v3 signature is missing, stale or wrong (answered with 401)."""


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature: base64 of HMAC-SHA256(secret, method + URI + body + timestamp)."""
    for encoded, plain in _URI_DECODE.items():
        uri = uri.replace(encoded, plain).replace(encoded.lower(), plain)
    message = method.encode() + uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_signature_v3(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    now: float | None = None,
) -> None:
    """Raise :class:`SignatureError` unless the request is HubSpot's and at most 5 min old."""
    if not timestamp or not signature:
        raise SignatureError("X-HubSpot-Signature-v3 and X-HubSpot-Request-Timestamp required")
    try:
        sent_ms = int(timestamp)
    except ValueError:
        raise SignatureError("X-HubSpot-Request-Timestamp is not a number") from None
    age = (time.time() if now is None else now) - sent_ms / 1000
    if not -MAX_AGE_S <= age <= MAX_AGE_S:
        raise SignatureError("X-HubSpot-Request-Timestamp is more than 5 minutes off")
    expected = signature_v3(secret, method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise SignatureError("X-HubSpot-Signature-v3 does not match")


class HubSpotMapper:
    """Maps one webhook event at a time, with the ``[ingest.hubspot]`` configuration."""

    def __init__(self, mapping: HubSpotMapping, stages: tuple[str, ...]) -> None:
        self.mapping = mapping
        self.stages = frozenset(stages)
        self._ignored = frozenset(value.lower() for value in mapping.ignored_stages)
        self._stages = {key.lower(): value for key, value in mapping.stages.items()}

    def map(self, item: object, *, now: float | None = None) -> Result:
        """Map one element of the webhook's array."""
        if not isinstance(item, dict):
            return Refusal("event", "must be a JSON object")
        kind = item.get("subscriptionType")
        if kind == "contact.propertyChange":
            if item.get("propertyName") != "lifecyclestage":
                return None
        elif kind != "contact.creation":
            return None
        common = self._common(item, str(kind))
        if isinstance(common, Refusal):
            return common
        event, lead_id = common
        stamp = time.time() if now is None else now
        if kind == "contact.creation":
            event.update(type="lead_created", source=self.mapping.source, team=self.mapping.team)
            return checked("leads", lead_id, event, self.stages, stamp)
        value = item.get("propertyValue")
        if value is None or value == "":
            return None  # the stage was cleared: nothing entered
        if not isinstance(value, str):
            return Refusal("propertyValue", "must be a string")
        lowered = value.strip().lower()
        if lowered in self._ignored:
            return None
        stage = self._stages.get(lowered)
        if stage is None:
            return Refusal(
                "propertyValue",
                "lifecycle stage not in ingest.hubspot.stages nor ingest.hubspot.ignored_stages",
            )
        event.update(type="stage_changed", to_stage=stage)
        return checked("transitions", lead_id, event, self.stages, stamp)

    def _common(self, item: Mapping[str, Any], kind: str) -> tuple[dict[str, Any], str] | Refusal:
        lead_id = identifier(item.get("objectId"))
        if lead_id is None:
            return Refusal("objectId", "required: the contact's id")
        raw_id, portal = identifier(item.get("eventId")), identifier(item.get("portalId"))
        if raw_id is None:
            return Refusal("eventId", "required: a number or a string")
        if portal is None:
            return Refusal("portalId", "required: a number or a string")
        occurred_ms = item.get("occurredAt")
        if isinstance(occurred_ms, bool) or not isinstance(occurred_ms, int | float):
            return Refusal("occurredAt", "required: milliseconds since the epoch")
        try:
            occurred = dt.datetime.fromtimestamp(occurred_ms / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return Refusal("occurredAt", "is out of range")
        event_id = f"hubspot-{portal}-{kind}-{raw_id}"[:128]
        return {"event_id": event_id, "occurred_at": rfc3339(occurred), "lead_id": lead_id}, lead_id
