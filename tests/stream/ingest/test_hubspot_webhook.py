"""Signed HubSpot webhook requests, built from HubSpot's documented v3 algorithm, sent to a
``funnel ingest`` process: what they produce, and a replay and a forgery refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

from schemas import LeadCreated, StageChanged
from stream.config.topics import TopicNames
from tests.stream.ingest.support import APP_SECRET, GatewayProcess, post, produced


def hubspot_request(
    url: str,
    events: list[dict[str, Any]],
    *,
    secret: str = APP_SECRET,
    sent_at_ms: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers HubSpot sends: X-HubSpot-Signature-v3 is the base64 HMAC-SHA256,
    keyed with the app secret, of method + URI + body + X-HubSpot-Request-Timestamp."""
    body = json.dumps(events).encode()
    timestamp = str(sent_at_ms if sent_at_ms is not None else int(time.time() * 1000))
    source = b"POST" + url.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest())
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": signature.decode(),
        "X-HubSpot-Request-Timestamp": timestamp,
    }
    return body, headers


def contact_event(event_id: int, contact: int, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 2881778,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": int(time.time() * 1000) - 60_000,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": contact,
        "changeFlag": "NEW" if kind == "contact.creation" else "UPDATED",
        "changeSource": "CRM",
        **fields,
    }


def lifecycle(event_id: int, contact: int, value: str) -> dict[str, Any]:
    return contact_event(
        event_id,
        contact,
        "contact.propertyChange",
        propertyName="lifecyclestage",
        propertyValue=value,
    )


async def test_signed_webhooks_become_leads_and_stage_changes(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    gateway = GatewayProcess(broker, topic_prefix, tmp_path).start()
    url = gateway.url + "/hubspot/webhook"
    try:
        first = [
            contact_event(1, 501, "contact.creation"),
            lifecycle(1, 501, "marketingqualifiedlead"),
            contact_event(2, 502, "contact.creation"),
            lifecycle(3, 502, "subscriber"),
            lifecycle(4, 501, "salesqualifiedlead"),
            contact_event(
                5,
                501,
                "contact.propertyChange",
                propertyName="email",
                propertyValue="someone@example.com",
            ),
        ]
        body, headers = hubspot_request(url, first)
        status, _, answer = post(url, body, headers)
        assert (status, json.loads(answer)) == (200, {"success": True, "accepted": 4, "ignored": 2})
        # HubSpot retries with the same events and a new signature: the same event ids.
        retry = [{**event, "attemptNumber": 1} for event in first[:2]]
        assert post(url, *hubspot_request(url, retry))[0] == 200
        # A recorded request replayed six minutes later, and a forged one, are refused.
        stale_body, stale = hubspot_request(
            url, first, sent_at_ms=int(time.time() * 1000) - 360_000
        )
        assert post(url, stale_body, stale)[0] == 401
        forged_body, forged = hubspot_request(url, first, secret="not-the-secret")
        assert post(url, forged_body, forged)[0] == 401
        tampered = body.replace(b"501", b"999")
        assert post(url, tampered, headers)[0] == 401
        # A custom lifecycle stage nobody mapped is refused by name; the rest is taken.
        mixed = [lifecycle(6, 502, "98765432"), lifecycle(7, 502, "opportunity")]
        status, _, answer = post(url, *hubspot_request(url, mixed))
        refusal = json.loads(answer)
        assert status == 400 and refusal["accepted"] == 1
        assert [(r["index"], r["field"], r["eventId"]) for r in refusal["refused"]] == [
            (0, "propertyValue", 6)
        ]
        events = await produced(broker, names)
        samples = gateway.metrics()
    finally:
        gateway.stop()
    leads = events["leads"]
    assert all(isinstance(e, LeadCreated) for e in leads)
    assert sorted({e.lead_id for e in leads}) == ["501", "502"]
    assert len(leads) == 3 and len({e.event_id for e in leads}) == 2  # one retried
    changes = [e for e in events["transitions"] if isinstance(e, StageChanged)]
    assert sorted((e.lead_id, e.to_stage) for e in changes) == [
        ("501", "mql"),
        ("501", "mql"),
        ("501", "sql"),
        ("502", "opportunity"),
    ]
    assert samples.value("funnel_ingest_requests_total", endpoint="hubspot", status="401") == 3
    assert samples.value("funnel_ingest_events_total", source="hubspot", outcome="refused") == 1
