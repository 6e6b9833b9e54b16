"""The gateway's HTTP answers, in process with a stand-in producer: auth, limits, refusals,
Kafka outages, malformed bodies, and its own metrics."""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from stream.config.loading import load_settings
from stream.ingest import BATCH_LIMIT, CALL_LIMIT, Gateway, ProduceFailed
from stream.ingest.mapping import OutMessage
from stream.ingest.mapping.hubspot import signature_v3
from stream.observability.scrape import parse_metrics
from tests.stream.ingest.support import APP_SECRET, WRITE_KEY, basic_auth


class StandInProducer:
    """Takes every message, or fails like an unreachable Kafka when ``down``."""

    def __init__(self) -> None:
        self.sent: list[OutMessage] = []
        self.down = False

    async def send(self, messages: Sequence[OutMessage]) -> None:
        if self.down:
            raise ProduceFailed("Kafka did not acknowledge within 4 s")
        self.sent.extend(messages)


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[TestClient[Any, Any], StandInProducer]]:
    settings = load_settings(
        environ={"FUNNEL_INGEST_WRITE_KEYS": WRITE_KEY, "FUNNEL_HUBSPOT_APP_SECRET": APP_SECRET}
    )
    producer = StandInProducer()
    client: TestClient[Any, Any] = TestClient(TestServer(Gateway(settings, producer).app()))
    await client.start_server()
    try:
        yield client, producer
    finally:
        await client.close()


AUTH = {"Authorization": basic_auth()}


def page(n: int, **fields: Any) -> dict[str, Any]:
    return {"type": "page", "messageId": f"m-{n}", "anonymousId": f"a-{n}", **fields}


async def test_a_batch_is_taken_and_answered_once_produced(gateway: Any) -> None:
    client, producer = gateway
    body = {"batch": [page(1), page(2), {"type": "screen", "messageId": "s"}]}
    response = await client.post("/v1/batch", data=orjson.dumps(body), headers=AUTH)
    assert response.status == 200
    assert await response.json() == {"success": True, "accepted": 2, "ignored": 1}
    assert [m.key for m in producer.sent] == [b"a-1", b"a-2"]


async def test_the_write_key_is_checked(gateway: Any) -> None:
    client, producer = gateway
    body = orjson.dumps(page(1))
    for headers in (
        {},
        {"Authorization": basic_auth("wrong")},
        {"Authorization": "Bearer " + WRITE_KEY},
        {"Authorization": "Basic %%%"},
    ):
        response = await client.post("/v1/page", data=body, headers=headers)
        assert response.status == 401, headers
        assert "WWW-Authenticate" in response.headers
    # analytics.js in a browser puts the key in the body instead
    keyed = orjson.dumps({**page(2), "writeKey": WRITE_KEY})
    assert (await client.post("/v1/page", data=keyed)).status == 200
    assert [m.key for m in producer.sent] == [b"a-2"]


async def test_segments_size_limits_answer_413(gateway: Any) -> None:
    client, producer = gateway
    big_call = page(1, properties={"blob": "x" * CALL_LIMIT})
    response = await client.post("/v1/page", data=orjson.dumps(big_call), headers=AUTH)
    assert response.status == 413
    calls = [page(n, properties={"blob": "x" * 20_000}) for n in range(30)]
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": calls}), headers=AUTH)
    assert response.status == 413 and len(orjson.dumps({"batch": calls})) > BATCH_LIMIT
    # a gzip body is limited by what it unpacks to
    packed = gzip.compress(orjson.dumps({"batch": calls}))
    headers = {**AUTH, "Content-Encoding": "gzip"}
    assert len(packed) < BATCH_LIMIT
    assert (await client.post("/v1/batch", data=packed, headers=headers)).status == 413
    # one call over 32 KB inside a batch is refused, the others taken
    body = {"batch": [page(1), big_call | {"messageId": "big"}, page(3)]}
    response = await client.post("/v1/batch", data=orjson.dumps(body), headers=AUTH)
    answer = await response.json()
    assert response.status == 400
    assert answer["refused"] == [
        {
            "index": 1,
            "field": "call",
            "reason": "larger than Segment's 32 KB per call",
            "messageId": "big",
        }
    ]
    assert [m.key for m in producer.sent] == [b"a-1", b"a-3"]


async def test_refused_calls_are_named_and_the_rest_of_the_batch_is_taken(gateway: Any) -> None:
    client, producer = gateway
    track = {"type": "track", "messageId": "t-1", "event": "Signed Up", "email": "x@y.example"}
    body = {"batch": [page(1), track, page(2, anonymousId=None), page(3)]}
    response = await client.post("/v1/batch", data=orjson.dumps(body), headers=AUTH)
    answer = await response.json()
    assert response.status == 400
    assert answer["accepted"] == 2 and answer["code"] == "invalid_request"
    assert [(r["index"], r["field"]) for r in answer["refused"]] == [
        (1, "userId"),
        (2, "anonymousId"),
    ]
    assert "x@y.example" not in await response.text()
    assert [m.key for m in producer.sent] == [b"a-1", b"a-3"]
    response = await client.post("/v1/track", data=orjson.dumps(track), headers=AUTH)
    assert response.status == 400
    assert (await response.json())["message"].startswith("userId: ")


async def test_kafka_unreachable_is_503_with_retry_after(gateway: Any) -> None:
    client, producer = gateway
    producer.down = True
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": [page(1)]}), headers=AUTH)
    assert response.status == 503 and response.headers["Retry-After"] == "2"
    producer.down = False
    response = await client.post("/v1/batch", data=orjson.dumps({"batch": [page(1)]}), headers=AUTH)
    assert response.status == 200 and len(producer.sent) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"null",
        b"[1,2]",
        b'{"batch": 5}',
        b'{"batch": {"a": 1}}',
        b"\xff\xfe",
        b'{"batch": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b'{"batch": [null, "x", 1.5e999]}',
    ],
)
async def test_a_malformed_body_is_a_400_never_a_crash(gateway: Any, body: bytes) -> None:
    client, _producer = gateway
    response = await client.post("/v1/batch", data=body, headers=AUTH)
    assert response.status == 400
    assert (await client.get("/health")).status == 200


def signed(body: bytes, url: str, *, secret: str = APP_SECRET, age_s: float = 0) -> dict[str, str]:
    ts = str(int((time.time() - age_s) * 1000))
    return {
        "X-HubSpot-Signature-v3": signature_v3(secret, "POST", url, body, ts),
        "X-HubSpot-Request-Timestamp": ts,
        "Content-Type": "application/json",
    }


async def test_hubspot_webhooks_need_a_fresh_valid_signature(gateway: Any) -> None:
    client, producer = gateway
    events = [
        {
            "eventId": 1,
            "portalId": 9,
            "occurredAt": int(time.time() * 1000),
            "objectId": 5,
            "subscriptionType": "contact.creation",
        }
    ]
    body = orjson.dumps(events)
    url = str(client.make_url("/hubspot/webhook"))
    assert (
        await client.post("/hubspot/webhook", data=body, headers=signed(body, url))
    ).status == 200
    stale = signed(body, url, age_s=301)
    assert (await client.post("/hubspot/webhook", data=body, headers=stale)).status == 401
    forged = signed(body, url, secret="guess")
    assert (await client.post("/hubspot/webhook", data=body, headers=forged)).status == 401
    assert [m.key for m in producer.sent] == [b"5"]


async def test_the_gateway_exports_every_metric_of_its_contract_section(gateway: Any) -> None:
    client, _producer = gateway
    text = (Path(__file__).parents[3] / "docs" / "contract" / "metrics.md").read_text()
    section = text.split("## Ingest gateway", 1)[1]
    named = set(re.findall(r"^\| `(funnel_ingest_\w+)`", section, re.M))
    assert len(named) == 3
    exposed = await (await client.get("/metrics")).text()
    for name in named:
        assert f"# TYPE {name} " in exposed, name


async def test_the_gateway_counts_requests_and_events(gateway: Any) -> None:
    client, _producer = gateway
    body = {"batch": [page(1), page(2, anonymousId=None), {"type": "alias", "messageId": "x"}]}
    await client.post("/v1/batch", data=orjson.dumps(body), headers=AUTH)
    await client.post("/v1/page", data=b"{}")
    samples = parse_metrics(await (await client.get("/metrics")).text())
    assert samples.value("funnel_ingest_requests_total", endpoint="batch", status="400") == 1
    assert samples.value("funnel_ingest_requests_total", endpoint="page", status="401") == 1
    for outcome, n in (("produced", 1), ("refused", 1), ("ignored", 1), ("failed", 0)):
        assert samples.value("funnel_ingest_events_total", source="segment", outcome=outcome) == n
    assert samples.value("funnel_ingest_produce_latency_seconds_count") == 1
