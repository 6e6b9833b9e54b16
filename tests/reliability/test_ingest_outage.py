"""Kafka stops while a Segment client is sending through ``funnel ingest``: the gateway answers
503 with Retry-After, neither crashes nor answers 200 for what Kafka did not take, and the
client's own retries end, once Kafka is back, with every event counted once.

The embedded broker keeps everything in memory, so the broker that comes back is empty: the
test creates the topics again, with the gateway frozen meanwhile (SIGSTOP), as Apache Kafka's
topics would simply still be there. The events that count are those sent during the outage.
A batch that aiokafka still held when its request gave up may reach Kafka as well as the
client's retry: the worker, started afterwards, counts each event id once.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from segment.analytics.client import Client as SegmentClient

from stream.config.topics import TopicNames
from stream.kafka.admin import ensure_topics
from stream.kafka.broker import EmbeddedBroker
from tests.harness import WorkerProcess, free_port, wait_caught_up
from tests.stream.ingest.support import WRITE_KEY, GatewayProcess, produced

OUTAGE_S = 8.0
DURING = 300


async def test_the_clients_retries_bring_every_event_once_after_an_outage(
    topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    port = free_port()
    broker = EmbeddedBroker(port)
    broker.start()
    gateway = GatewayProcess(broker.bootstrap, topic_prefix, tmp_path).start()
    errors: list[Any] = []
    client = SegmentClient(WRITE_KEY, host=gateway.url, on_error=lambda e, b: errors.append(e))
    worker: WorkerProcess | None = None
    try:
        for i in range(50):
            client.page(anonymous_id=f"before-{i}", properties={"path": "/"})
        client.flush()

        broker.stop()
        for i in range(DURING):
            client.page(anonymous_id=f"during-{i}", message_id=f"during-{i}")
        sender = threading.Thread(target=client.flush)
        sender.start()
        time.sleep(OUTAGE_S)
        outage = gateway.metrics()
        assert gateway.process is not None and gateway.process.poll() is None, gateway.tail()

        # The new broker is empty: its topics are made before the gateway may reconnect (it is
        # frozen meanwhile), or the producer's metadata request would create them its own way.
        os.killpg(gateway.process.pid, signal.SIGSTOP)
        try:
            broker = EmbeddedBroker(port)
            broker.start()
            await ensure_topics(broker.bootstrap, dict.fromkeys(names.inputs, 8))
        finally:
            os.killpg(gateway.process.pid, signal.SIGCONT)
        sender.join(timeout=120)
        assert not sender.is_alive(), "the client did not finish its retries"
        client.shutdown()
        after = gateway.metrics()
        events = await produced(broker.bootstrap, names)
        worker = WorkerProcess(broker.bootstrap, topic_prefix, tmp_path / "worker", store="memory")
        worker.start().wait_ready(timeout=60)
        await wait_caught_up(broker.bootstrap, worker.app_id, names.inputs)
        samples = worker.metrics()
    finally:
        if worker is not None:
            worker.stop()
        gateway.stop()
        broker.stop()
    assert errors == []
    assert outage.value("funnel_ingest_requests_total", endpoint="batch", status="503") >= 1
    assert outage.value("funnel_ingest_events_total", source="segment", outcome="failed") >= 1
    assert (
        after.value("funnel_ingest_events_total", source="segment", outcome="produced")
        >= 50 + DURING
    )
    ids = [e.event_id for e in events["visits"]]
    assert set(ids) == {f"during-{i}" for i in range(DURING)}
    assert samples.value("funnel_events_applied_total", topic=names.visits) == DURING
    assert samples.value("funnel_stage_entries_total", stage="visit") == DURING
    assert samples.value("funnel_events_duplicate_total", topic=names.visits) == len(ids) - DURING
