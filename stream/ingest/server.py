"""``funnel ingest``: the HTTP gateway (aiohttp) in front of the mappers and the producer.

Routes: ``POST /v1/batch``, ``/v1/track``, ``/v1/identify``, ``/v1/page`` (Segment spec, HTTP
Basic auth with a write key as the user name), ``POST /hubspot/webhook`` (HubSpot, signature
v3), ``GET /health`` and ``GET /metrics``. Answers (docs/ingest.md): 200 once Kafka has
acknowledged every event of the request; 400 naming the field of each call that could not be
mapped (the rest of a batch is still produced); 401 for a bad write key or signature; 413 over
Segment's limits; 503 with ``Retry-After`` when Kafka did not acknowledge in time. Bodies are
never logged: a log line names endpoints, counts and fields only.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from stream.config.settings import Settings
from stream.ingest.errors import ProduceFailed
from stream.ingest.mapping import (
    HubSpotMapper,
    OutMessage,
    Refusal,
    Result,
    SegmentMapper,
    SignatureError,
    verify_signature_v3,
)
from stream.ingest.metrics import IngestMetrics, Source

log = logging.getLogger(__name__)

CALL_LIMIT: Final = 32 * 1024
"""Segment's limit on one call, in bytes (a single-call request, or each call of a batch)."""
BATCH_LIMIT: Final = 500 * 1024
"""Segment's limit on one batch request, in bytes."""
_MAX_REFUSALS_SHOWN: Final = 100
_CORS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}


class Producer(Protocol):
    """What the gateway needs of a producer (:class:`~stream.ingest.producer.EventProducer`)."""

    async def send(self, messages: Sequence[OutMessage]) -> None: ...


def _answer(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers={**_CORS, **(headers or {})},
    )


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return _answer(status, {"success": False, "code": code, "message": message}, headers)


class Gateway:
    """The gateway's request handlers; :meth:`app` wires them into an aiohttp application."""

    def __init__(
        self,
        settings: Settings,
        producer: Producer,
        registry: CollectorRegistry | None = None,
    ) -> None:
        ingest = settings.ingest
        stages = settings.funnel.all_stages
        self.segment = SegmentMapper(ingest.segment, stages)
        self.hubspot = HubSpotMapper(ingest.hubspot, stages)
        self.producer = producer
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self._keys = tuple(key.get_secret_value().encode() for key in ingest.write_keys)
        secret = ingest.hubspot.app_secret
        self._hubspot_secret = secret.get_secret_value() if secret is not None else None
        self._public_url = (ingest.hubspot.public_url or "").rstrip("/") or None
        self._retry_after = str(max(1, round(ingest.retry_after)))

    def app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=BATCH_LIMIT)
        for endpoint in ("batch", "track", "identify", "page"):
            app.router.add_post(f"/v1/{endpoint}", self._segment_handler(endpoint))
            app.router.add_route("OPTIONS", f"/v1/{endpoint}", self._preflight)
        app.router.add_post("/hubspot/webhook", self._counted("hubspot", self.hubspot_webhook))
        app.router.add_get("/health", self._counted("health", self.health))
        app.router.add_get("/metrics", self._counted("metrics", self.metrics_page))
        return app

    def _counted(
        self, endpoint: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        requests = self.metrics.requests

        async def counted(request: web.Request) -> web.StreamResponse:
            response = await handler(request)
            requests.labels(endpoint, str(response.status)).inc()
            return response

        return counted

    def _segment_handler(
        self, endpoint: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.segment_calls(request, endpoint)

        return self._counted(endpoint, handle)

    async def _preflight(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204, headers=_CORS)

    async def health(self, request: web.Request) -> web.StreamResponse:
        """200 while the gateway can take events."""
        return _answer(200, {"status": "ok"})

    async def metrics_page(self, request: web.Request) -> web.StreamResponse:
        """The gateway's metrics, Prometheus text format."""
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    # Segment spec -------------------------------------------------------------------------

    def _key_ok(self, key: bytes) -> bool:
        # Every key is compared, in constant time, so timing does not tell which one is close.
        found = False
        for known in self._keys:
            found |= hmac.compare_digest(key, known)
        return found

    def _basic_user(self, header: str) -> bytes | None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        return decoded.partition(b":")[0]

    async def segment_calls(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        """One Segment-spec request: a batch, or one track, identify or page call."""
        received_at = dt.datetime.now(dt.UTC)
        header = request.headers.get("Authorization")
        if header is not None:
            user = self._basic_user(header)
            if user is None or not self._key_ok(user):
                return self._unauthorized()
        limit = BATCH_LIMIT if endpoint == "batch" else CALL_LIMIT
        if (request.content_length or 0) > limit:
            return self._too_large(endpoint, limit)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(endpoint, limit)
        if len(body) > limit:
            return self._too_large(endpoint, limit)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "invalid_json", "body: not valid JSON")
        if not isinstance(payload, dict):
            return _error(400, "invalid_request", "body: must be a JSON object")
        if header is None:  # analytics.js in a browser sends the key in the body
            key = payload.get("writeKey")
            if not isinstance(key, str) or not self._key_ok(key.encode()):
                return self._unauthorized()
        if endpoint != "batch":
            calls: list[Any] = [payload]
            sent_at, context, call_type = None, None, endpoint
        else:
            batch = payload.get("batch")
            if not isinstance(batch, list):
                return _error(400, "invalid_request", "batch: must be a list of calls")
            calls, call_type = batch, None
            sent_at, context = payload.get("sentAt"), payload.get("context")
            if not isinstance(context, dict):
                context = None
        now = time.time()
        mapper = self.segment.map
        results: list[Result] = [
            mapper(
                call,
                received_at=received_at,
                sent_at=sent_at,
                context=context,
                call_type=call_type,
                now=now,
            )
            for call in calls
        ]
        if endpoint == "batch" and len(body) > CALL_LIMIT:
            for index, call in enumerate(calls):
                if len(orjson.dumps(call)) > CALL_LIMIT:
                    results[index] = Refusal("call", "larger than Segment's 32 KB per call")
        return await self._produce("segment", endpoint, calls, results, "messageId")

    def _unauthorized(self) -> web.Response:
        return _error(
            401,
            "unauthorized",
            "a valid write key is required (HTTP Basic auth, the key as user name)",
            **{"WWW-Authenticate": 'Basic realm="funnel ingest"'},
        )

    def _too_large(self, endpoint: str, limit: int) -> web.Response:
        what = "batch" if endpoint == "batch" else "call"
        return _error(
            413, "too_large", f"body: larger than Segment's {limit // 1024} KB per {what}"
        )

    # HubSpot ------------------------------------------------------------------------------

    def _request_uri(self, request: web.Request) -> str:
        """The URI HubSpot signed: the configured public URL, else what the request says."""
        if self._public_url is not None:
            return self._public_url + request.rel_url.path_qs
        scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
        return f"{scheme}://{host}{request.rel_url.path_qs}"

    async def hubspot_webhook(self, request: web.Request) -> web.StreamResponse:
        """One HubSpot webhook request: a signed JSON array of events."""
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large("batch", BATCH_LIMIT)
        if self._hubspot_secret is None:
            return _error(401, "unauthorized", "FUNNEL_HUBSPOT_APP_SECRET is not set")
        try:
            verify_signature_v3(
                self._hubspot_secret,
                request.method,
                self._request_uri(request),
                body,
                request.headers.get("X-HubSpot-Request-Timestamp"),
                request.headers.get("X-HubSpot-Signature-v3"),
            )
        except SignatureError as exc:
            log.warning("hubspot request refused: %s", exc)
            return _error(401, "unauthorized", str(exc))
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "invalid_json", "body: not valid JSON")
        if not isinstance(payload, list):
            return _error(400, "invalid_request", "body: must be a JSON array of events")
        now = time.time()
        results = [self.hubspot.map(item, now=now) for item in payload]
        return await self._produce("hubspot", "hubspot", payload, results, "eventId")

    # Both ---------------------------------------------------------------------------------

    async def _produce(
        self,
        source: Source,
        endpoint: str,
        calls: Sequence[Any],
        results: Sequence[Result],
        id_field: str,
    ) -> web.StreamResponse:
        """Produce what was mapped; answer 200, 400 (some refused) or 503 (Kafka)."""
        messages = [result for result in results if isinstance(result, OutMessage)]
        refused = [(i, r) for i, r in enumerate(results) if isinstance(r, Refusal)]
        ignored = len(results) - len(messages) - len(refused)
        count = self.metrics.count_events
        count(source, "ignored", ignored)
        count(source, "refused", len(refused))
        if messages:
            started = time.perf_counter()
            try:
                await self.producer.send(messages)
            except ProduceFailed as exc:
                count(source, "failed", len(messages))
                log.warning("endpoint=%s events=%d not produced: %s", endpoint, len(messages), exc)
                return _error(
                    503,
                    "kafka_unavailable",
                    "Kafka did not acknowledge the events; retry the request",
                    **{"Retry-After": self._retry_after},
                )
            self.metrics.produce_latency.observe(time.perf_counter() - started)
            count(source, "produced", len(messages))
        if not refused:
            return _answer(200, {"success": True, "accepted": len(messages), "ignored": ignored})
        first = refused[0][1]
        log.info(
            "endpoint=%s refused=%d accepted=%d first=%s",
            endpoint,
            len(refused),
            len(messages),
            first,
        )
        if len(calls) == 1 and endpoint != "batch":
            return _error(400, "invalid_request", str(first))
        details = []
        for index, refusal in refused[:_MAX_REFUSALS_SHOWN]:
            item: dict[str, Any] = {
                "index": index,
                "field": refusal.field,
                "reason": refusal.reason,
            }
            call = calls[index]
            if isinstance(call, dict) and isinstance(ident := call.get(id_field), str | int):
                item[id_field] = ident
            details.append(item)
        message = (
            f"{len(refused)} of {len(results)} refused ({len(messages)} accepted, "
            f"{ignored} ignored); first: [{refused[0][0]}] {first}"
        )
        return _answer(
            400,
            {
                "success": False,
                "code": "invalid_request",
                "message": message,
                "accepted": len(messages),
                "ignored": ignored,
                "refused": details,
            },
        )
