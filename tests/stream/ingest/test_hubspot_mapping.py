"""HubSpot webhooks → contract events, and the v3 signature checked as HubSpot documents it."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest

from schemas import LeadCreated, StageChanged, classify
from stream.config.ingest import HubSpotMapping
from stream.config.loading import load_settings
from stream.ingest.mapping import HubSpotMapper, OutMessage, Refusal, SignatureError
from stream.ingest.mapping import verify_signature_v3 as verify
from tests.stream.ingest.support import STAGES

NOW = 1_795_000_000.0
NOW_MS = int(NOW * 1000)
SECRET = "app-secret"
URI = "https://ingest.example.com/hubspot/webhook"


def documented_signature(secret: str, method: str, uri: str, body: bytes, ts: str) -> str:
    """HubSpot's v3 recipe, written out again: base64(HMAC-SHA256(secret, m + uri + body + ts))."""
    source = f"{method}{uri}{body.decode()}{ts}".encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def test_a_signature_made_by_hubspots_recipe_is_accepted() -> None:
    body = b'[{"eventId":1,"subscriptionType":"contact.creation"}]'
    ts = str(NOW_MS - 1000)
    signature = documented_signature(SECRET, "POST", URI, body, ts)
    verify(SECRET, "POST", URI, body, ts, signature, now=NOW)
    # HubSpot signs the URI with some characters decoded: %3A, %2F, %3F, %40, %2C ...
    encoded = URI + "?next=%2Fa%3Fb%3Dc%40d"
    signature = documented_signature(SECRET, "POST", URI + "?next=/a?b%3Dc@d", body, ts)
    verify(SECRET, "POST", encoded, body, ts, signature, now=NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"secret": "wrong"}, "does not match"),
        ({"body": b"[]"}, "does not match"),
        ({"uri": URI + "?x=1"}, "does not match"),
        ({"ts": str(NOW_MS - 301_000)}, "5 minutes"),  # a replay, signed for its own time
        ({"ts": str(NOW_MS + 301_000)}, "5 minutes"),
        ({"ts": "soon"}, "not a number"),
        ({"ts": ""}, "required"),
        ({"signature": None}, "required"),
    ],
)
def test_a_bad_or_stale_signature_is_refused(change: dict[str, Any], message: str) -> None:
    request = {"secret": SECRET, "uri": URI, "body": b"[1]", "ts": str(NOW_MS)}
    signed = {**request, **change}
    signature = documented_signature(SECRET, "POST", signed["uri"], signed["body"], signed["ts"])
    if "secret" in change:
        signature = documented_signature("wrong", "POST", URI, b"[1]", str(NOW_MS))
    if "body" in change or "uri" in change:  # signed over the original, sent changed
        signature = documented_signature(SECRET, "POST", URI, b"[1]", signed["ts"])
    if "signature" in change:
        signature = None  # type: ignore[assignment]
    with pytest.raises(SignatureError, match=message):
        verify(
            SECRET, "POST", signed["uri"], signed["body"], signed["ts"] or None, signature, now=NOW
        )


def hubspot_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "eventId": 1001,
        "subscriptionId": 7,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": NOW_MS - 60_000,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": 123,
        "changeSource": "CRM",
        **fields,
    }


def mapped(item: dict[str, Any], **mapping: Any) -> OutMessage | Refusal | None:
    settings = load_settings(environ={})
    return HubSpotMapper(HubSpotMapping(**mapping), settings.funnel.all_stages).map(item, now=NOW)


def test_contact_creation_is_a_lead_and_lifecycle_changes_are_stage_changes() -> None:
    message = mapped(hubspot_event("contact.creation"))
    assert isinstance(message, OutMessage) and message.kind == "leads"
    lead = classify("leads", message.key, message.value, stages=STAGES, now=NOW)
    assert isinstance(lead, LeadCreated)
    assert (lead.lead_id, lead.source, lead.team) == ("123", "crm", "default")
    assert lead.event_id == "hubspot-62515-contact.creation-1001"
    assert lead.occurred_at.timestamp() == NOW - 60
    for value, stage in [
        ("marketingqualifiedlead", "mql"),
        ("salesqualifiedlead", "sql"),
        ("opportunity", "opportunity"),
        ("customer", "customer"),
    ]:
        item = hubspot_event(
            "contact.propertyChange", propertyName="lifecyclestage", propertyValue=value
        )
        message = mapped(item)
        assert isinstance(message, OutMessage) and message.kind == "transitions"
        change = classify("transitions", message.key, message.value, stages=STAGES, now=NOW)
        assert isinstance(change, StageChanged) and change.to_stage == stage
        assert change.event_id == "hubspot-62515-contact.propertyChange-1001"


def test_custom_and_ignored_lifecycle_stages() -> None:
    custom = hubspot_event(
        "contact.propertyChange", propertyName="lifecyclestage", propertyValue="1234567"
    )
    refused = mapped(custom)
    assert isinstance(refused, Refusal) and refused.field == "propertyValue"
    message = mapped(custom, stages={"1234567": "contacted"})
    assert isinstance(message, OutMessage) and b'"to_stage":"contacted"' in message.value
    for value in ("subscriber", "other", ""):
        item = {**custom, "propertyValue": value}
        assert mapped(item) is None
    assert mapped(hubspot_event("contact.propertyChange", propertyName="email")) is None
    assert mapped(hubspot_event("deal.creation")) is None


@pytest.mark.parametrize("field", ["objectId", "eventId", "portalId", "occurredAt"])
def test_an_event_missing_a_field_is_refused_naming_it(field: str) -> None:
    item = hubspot_event("contact.creation")
    del item[field]
    refused = mapped(item)
    assert isinstance(refused, Refusal) and refused.field == field
    assert isinstance(mapped({**hubspot_event("contact.creation"), field: [1]}), Refusal)
