"""The ingest gateway: events/s through ``/v1/batch`` to acknowledged Kafka records, and the
p99 request latency at a steady 1,000 requests/s (``funnel ingest`` as a child, no worker).

Throughput: ``_CLIENTS`` keep-alive clients post prepared batches of 100 Segment calls (pages,
``Signed Up`` tracks and lifecycle identifies, each with its own ``messageId``) as fast as the
gateway answers. A 200 means Kafka acknowledged every event of the batch (acks=all), so the
rate is acknowledged events per second; the topics' end offsets are checked to hold them all.

Latency: single calls (``/v1/page``, ``/v1/track``, ``/v1/identify`` in turn) sent on an open
schedule of 1,000 a second over a pool of connections; a request's latency runs from the
moment it was due, so a client that falls behind counts against the gateway, not for it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson

from bench.context import Context, Results
from bench.kafka import create_topics, end_offsets
from bench.procs import ChildFailed, ingest_child
from bench.track import wait_healthy
from stream.config.topics import TopicNames

log = logging.getLogger(__name__)

PREFIX = "bench-ingest."
BATCH_CALLS = 100
_CLIENTS = 6
_STEADY_RATE = 1000.0
_STEADY_CONNECTIONS = 64
_WRITE_KEY = "bench-write-key"
_READY_TIMEOUT_S = 60.0


def _call(kind: str, n: int) -> dict[str, Any]:
    user = f"user-{n}"
    common: dict[str, Any] = {
        "messageId": str(uuid.uuid4()),
        "anonymousId": f"anon-{n}",
        "timestamp": "2026-12-01T10:00:00.000Z",
        "context": {
            "campaign": {"name": "winter", "source": "google", "medium": "cpc"},
            "page": {"path": "/pricing", "referrer": "https://www.google.com/"},
            "library": {"name": "analytics-python", "version": "2.3.4"},
        },
    }
    if kind == "page":
        return {**common, "type": "page", "name": "Pricing", "properties": {"path": "/pricing"}}
    if kind == "track":
        properties = {"team": "sales-emea", "plan": "pro", "email": "someone@example.com"}
        return {
            **common,
            "type": "track",
            "userId": user,
            "event": "Signed Up",
            **{"properties": properties},
        }
    traits = {"lifecycle_stage": "mql", "email": "someone@example.com", "name": "Some One"}
    return {**common, "type": "identify", "userId": user, "traits": traits}


def _kinds() -> Iterator[str]:
    return itertools.cycle(("page", "page", "page", "track", "identify"))


def batches(count: int) -> list[bytes]:
    """``count`` events as bodies of ``BATCH_CALLS`` calls each (fresh message ids)."""
    kinds, bodies = _kinds(), []
    for start in range(0, count, BATCH_CALLS):
        calls = [_call(next(kinds), n) for n in range(start, min(count, start + BATCH_CALLS))]
        bodies.append(orjson.dumps({"batch": calls, "sentAt": "2026-12-01T10:00:01.000Z"}))
    return bodies


def _headers() -> dict[str, str]:
    key = base64.b64encode(f"{_WRITE_KEY}:".encode()).decode()
    return {"Authorization": f"Basic {key}", "Content-Type": "application/json"}


async def _throughput(url: str, bodies: list[bytes]) -> float:
    """Seconds to post every body with ``_CLIENTS`` keep-alive clients (each must get 200)."""
    queue = iter(bodies)

    async def client() -> None:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector, headers=_headers()) as session:
            for body in queue:
                async with session.post(url, data=body) as response:
                    await response.read()
                    if response.status != 200:
                        raise ChildFailed(f"gateway answered {response.status} to a batch")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(_CLIENTS)))
    return time.perf_counter() - started


async def _steady(base: str, seconds: float) -> tuple[list[float], int]:
    """Latencies of single calls sent at ``_STEADY_RATE`` a second; and the non-200 count."""
    total = int(_STEADY_RATE * seconds)
    kinds = _kinds()
    bodies = []
    for n in range(total):
        kind = next(kinds)
        bodies.append((f"{base}/v1/{kind}", orjson.dumps(_call(kind, 10_000_000 + n))))
    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=_STEADY_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, headers=_headers()) as session:
        start = time.perf_counter() + 0.5

        async def one(due: float, url: str, body: bytes) -> None:
            nonlocal failures
            async with session.post(url, data=body) as response:
                await response.read()
                if response.status != 200:
                    failures += 1
            latencies.append(time.perf_counter() - due)

        tasks = []
        for n, (url, body) in enumerate(bodies):
            due = start + n / _STEADY_RATE
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(due, url, body)))
        await asyncio.gather(*tasks)
    return latencies, failures


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_ingest(ctx: Context) -> Results:
    """The ``ingest`` phase: throughput through /v1/batch, then p99 at 1,000 requests/s."""
    names = TopicNames.from_prefix(PREFIX)
    await create_topics(ctx.bootstrap, names)
    events = 50_000 if ctx.events <= 50_000 else 300_000
    bodies = batches(events)
    warmup = batches(20 * BATCH_CALLS)
    child = ctx.children.start(
        ingest_child(
            bootstrap=ctx.bootstrap, prefix=PREFIX, write_key=_WRITE_KEY, log_dir=ctx.dir("logs")
        )
    )
    try:
        await wait_healthy(child, timeout_s=_READY_TIMEOUT_S)
        base = child.url("")
        await _throughput(f"{base}/v1/batch", warmup)
        before = sum((await end_offsets(ctx.bootstrap, names.inputs)).values())
        log.info("ingest: %d events in batches of %d, %d clients", events, BATCH_CALLS, _CLIENTS)
        seconds = await _throughput(f"{base}/v1/batch", bodies)
        after = sum((await end_offsets(ctx.bootstrap, names.inputs)).values())
        if after - before != events:
            raise ChildFailed(f"{after - before} records in Kafka for {events} events answered 200")
        rate = events / seconds
        log.info("ingest: %.0f events/s; steady %.0f requests/s", rate, _STEADY_RATE)
        latencies, failures = await _steady(base, ctx.steady_seconds)
        child.check_alive()
    finally:
        child.stop()
    return {
        "ingest_events_per_s": rate,
        "ingest_p99_request_s_at_1k": _quantile(latencies, 0.99),
        "ingest_p50_request_s_at_1k": _quantile(latencies, 0.50),
        "ingest_steady_requests": len(latencies),
        "ingest_steady_failures": failures,
    }
