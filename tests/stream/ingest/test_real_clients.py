"""The real Segment and RudderStack Python clients, pointed at ``funnel ingest``, and a real
worker behind it on the embedded broker: the worker's counters and gauges end as written here.

300 users visit twice (their source from the UTM medium, a search referrer, or none); every
other user signs up (a lead, in team sales-emea or sales-amer by their number); every sixth
becomes an MQL and every twelfth an SQL through identify traits. RudderStack's client (gzip,
as it sends by default) then re-sends every sign-up with its original messageId, as a client
whose answer was lost would, and brings 100 visits of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from stream.config.topics import TopicNames
from tests.harness import WorkerProcess, wait_caught_up
from tests.stream.ingest.support import WRITE_KEY, GatewayProcess, produced, raw_values

USERS = 300
SOURCES = ("paid_search", "organic", "direct")
SECRET_EMAIL = "person-{}@example.com"


def context(i: int) -> dict[str, Any]:
    """User ``i``'s source: a paid campaign, a Google search, or nothing (direct)."""
    if i % 3 == 0:
        return {"campaign": {"name": "winter", "source": "google", "medium": "cpc"}}
    if i % 3 == 1:
        return {"page": {"referrer": "https://www.google.com/", "url": "https://shop.test/"}}
    return {}


def team(i: int) -> str:
    return "sales-emea" if i % 4 == 0 else "sales-amer"


def send_with_segment(url: str, errors: list[Any]) -> None:
    client = SegmentClient(WRITE_KEY, host=url, on_error=lambda e, b: errors.append(e))
    for i in range(USERS):
        anon, user = f"anon-{i}", f"user-{i}"
        for path in ("/", "/pricing"):
            client.page(anonymous_id=anon, name=path, properties={"path": path}, context=context(i))
        if i % 2 == 0:
            client.track(
                user_id=user,
                anonymous_id=anon,
                event="Signed Up",
                properties={"team": team(i), "email": SECRET_EMAIL.format(i)},
                context=context(i),
                message_id=f"signup-{i}",
            )
        client.track(user_id=user, anonymous_id=anon, event="Viewed Pricing")  # not configured
        if i % 6 == 0:
            traits = {"lifecycle_stage": "mql", "email": SECRET_EMAIL.format(i), "name": "P"}
            client.identify(user_id=user, traits=traits)
        if i % 12 == 0:
            client.identify(user_id=user, traits={"lifecycle_stage": "sql", "phone": "+1 555"})
    client.flush()
    client.shutdown()


def send_with_rudderstack(url: str, errors: list[Any]) -> None:
    client = RudderClient(WRITE_KEY, host=url, gzip=True, on_error=lambda e, b: errors.append(e))
    for i in range(0, USERS, 2):  # the retried sign-ups: same message ids
        client.track(
            user_id=f"user-{i}",
            anonymous_id=f"anon-{i}",
            event="Signed Up",
            properties={"team": team(i)},
            context=context(i),
            message_id=f"signup-{i}",
        )
    for j in range(100):
        client.page(anonymous_id=f"rudder-anon-{j}", name="Home", properties={"path": "/"})
    client.flush()
    client.shutdown()


async def test_segment_and_rudderstack_clients_through_the_gateway_to_a_worker(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    gateway = GatewayProcess(broker, topic_prefix, tmp_path).start()
    worker = WorkerProcess(broker, topic_prefix, tmp_path / "worker")
    errors: list[Any] = []
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    try:
        worker.start()
        send_with_segment(gateway.url, errors)
        send_with_rudderstack(gateway.url, errors)
        worker.wait_ready(timeout=60)
        await wait_caught_up(broker, worker.app_id, names.inputs)
        samples = worker.metrics()
        ingest = gateway.metrics()
        events = await produced(broker, names)
        raw = await raw_values(broker, names)
    finally:
        gateway.stop()
        worker.stop()
    assert errors == []

    leads = [i for i in range(USERS) if i % 2 == 0]
    mqls = [i for i in range(USERS) if i % 6 == 0]
    sqls = [i for i in range(USERS) if i % 12 == 0]

    def entries(stage: str, source: str) -> float:
        return samples.value("funnel_stage_entries_total", stage=stage, source=source)

    for k, source in enumerate(SOURCES):
        users = [i for i in range(USERS) if i % 3 == k]
        visits = 2 * len(users) + (100 if source == "direct" else 0)
        assert entries("visit", source) == visits, source
        assert entries("lead", source) == len([i for i in leads if i % 3 == k]), source
        assert entries("mql", source) == len([i for i in mqls if i % 3 == k]), source
        assert entries("sql", source) == len([i for i in sqls if i % 3 == k]), source
    assert samples.value("funnel_events_duplicate_total", topic=names.leads) == len(leads)
    assert samples.value("funnel_events_applied_total", topic=names.leads) == len(leads)
    assert samples.value("funnel_events_rejected_total") == 0
    assert samples.value("funnel_events_rerouted_total") == 0  # produced on home partitions
    for name, n in (
        ("sales-emea", len([i for i in leads if team(i) == "sales-emea"])),
        ("sales-amer", len([i for i in leads if team(i) == "sales-amer"])),
    ):
        followed_up = len([i for i in sqls if team(i) == name])  # sql stops the clock
        assert samples.value("funnel_leads_awaiting_followup", team=name) == n - followed_up
        assert samples.value("funnel_followups_total", team=name) == followed_up

    assert len(events["visits"]) == 2 * USERS + 100
    assert len(events["leads"]) == 2 * len(leads)  # each sign-up twice, one event id
    assert len({e.event_id for e in events["leads"]}) == len(leads)
    assert len(events["transitions"]) == len(mqls) + len(sqls)
    segment = {
        o: ingest.value("funnel_ingest_events_total", source="segment", outcome=o)
        for o in ("produced", "ignored", "refused", "failed")
    }
    assert segment == {
        "produced": 2 * USERS + 100 + 2 * len(leads) + len(mqls) + len(sqls),
        "ignored": USERS,
        "refused": 0,
        "failed": 0,
    }
    # Personal data in traits and properties went nowhere: not to Kafka, not to the log.
    log = gateway.log_path.read_bytes()
    for text in (raw, log):
        assert b"example.com" not in text and b"+1 555" not in text
