"""The worker on the real embedded broker: every message applied, duplicate or dead-lettered."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas import REJECT_REASONS
from stream.config.topics import TopicNames
from stream.kafka.offsets import consumer_group_offsets, read_topic, topic_end_offsets
from stream.runtime.faustparts import MAX_RECORDS_PER_FETCH
from stream.runtime.seam.transport import BACKLOG_RECORDS
from tests.harness import WorkerProcess, has_series, produce, wait_caught_up


def _visit(eid: str, visitor: str, at: str = "2026-11-20T10:00:00Z", **extra: object) -> bytes:
    body = {"event_id": eid, "type": "visit", "occurred_at": at, "visitor_id": visitor}
    body.update({"source": "organic"}, **extra)
    return json.dumps(body).encode()


def _lead(eid: str, lead: str, at: str = "2026-11-20T10:05:00Z") -> bytes:
    return json.dumps(
        {
            "event_id": eid,
            "type": "lead_created",
            "occurred_at": at,
            "lead_id": lead,
            "source": "email",
            "team": "sales-emea",
        }
    ).encode()


def _stage(eid: str, lead: str, to: str, at: str = "2026-11-20T10:20:00Z") -> bytes:
    return json.dumps(
        {
            "event_id": eid,
            "type": "stage_changed",
            "occurred_at": at,
            "lead_id": lead,
            "to_stage": to,
        }
    ).encode()


async def test_every_message_is_applied_duplicate_or_dead_lettered(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    # (topic, key, value, expected outcome)
    cases: list[tuple[str, bytes | None, bytes | None, str]] = [
        (names.visits, b"v1", _visit("e-v1", "v1"), "applied"),
        (names.visits, b"v1", _visit("e-v1", "v1"), "duplicate"),
        (names.visits, b"v2", _visit("e-v2", "v2", email="someone@example.com"), "applied"),
        (names.visits, b"v3", b"{not json", "invalid_json"),
        (names.visits, b"v3", _lead("e-x1", "v3"), "wrong_topic_for_type"),
        (names.visits, b"v3", _visit("e-x2", "v3", at="2026-11-20T10:00:00"), "schema_violation"),
        (names.visits, b"other", _visit("e-x3", "v3"), "key_mismatch"),
        (names.visits, b"v4", _visit("e-x4", "v4", at=future), "future_timestamp"),
        (names.leads, b"L1", _lead("e-l1", "L1"), "applied"),
        (names.leads, b"L1", _lead("e-l1", "L1"), "duplicate"),
        (names.leads, b"L2", b"[1, 2]", "invalid_json"),
        (names.transitions, b"L1", _stage("e-s1", "L1", "contacted"), "applied"),
        (names.transitions, b"L1", _stage("e-s1", "L1", "contacted"), "duplicate"),
        (names.transitions, b"L1", _stage("e-s2", "L1", "nirvana"), "unknown_stage"),
    ]
    await produce(broker, [(t, k, v, None) for t, k, v, _ in cases])

    worker = WorkerProcess(broker, topic_prefix, tmp_path).start()
    try:
        worker.wait_ready()
        await wait_caught_up(broker, worker.app_id, names.inputs)
        samples = worker.metrics()
        for topic in names.inputs:
            expected = [c for c in cases if c[0] == topic]
            consumed = samples.value("funnel_events_consumed_total", topic=topic)
            applied = samples.value("funnel_events_applied_total", topic=topic)
            duplicate = samples.value("funnel_events_duplicate_total", topic=topic)
            rejected = samples.value("funnel_events_rejected_total", topic=topic)
            assert consumed == len(expected)
            assert consumed == applied + duplicate + rejected
            assert applied == sum(1 for c in expected if c[3] == "applied")
            assert duplicate == sum(1 for c in expected if c[3] == "duplicate")
            for reason in REJECT_REASONS:
                want = sum(1 for c in expected if c[3] == reason)
                got = samples.value("funnel_events_rejected_total", topic=topic, reason=reason)
                assert got == want, (topic, reason)

        dead = await read_topic(broker, names.dead_letter)
        rejected_cases = [c for c in cases if c[3] not in ("applied", "duplicate")]
        assert len(dead) == len(rejected_cases)
        by_value = {(r.key, r.value): dict(r.headers) for r in dead}
        for topic, key, value, reason in rejected_cases:
            headers = by_value[(key, value)]
            assert headers["reason"] == reason.encode()
            assert headers["source_topic"] == topic.encode()
            assert int(headers["source_offset"]) >= 0
            assert 0 <= int(headers["source_partition"]) < 8

        # Extra fields such as e-mail addresses never reach metrics or logs.
        assert "example.com" not in worker.metrics_text()
        assert "example.com" not in worker.tail(10_000)
    finally:
        assert worker.stop() == 0


async def test_worker_becomes_ready_with_its_known_series(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    # How fast it starts is measured by the benchmark (worker_startup_s), not here.
    worker = WorkerProcess(broker, topic_prefix, tmp_path)
    worker.start()
    try:
        worker.wait_ready(timeout=60)
        samples = worker.metrics()
        # Known series are exported from start-up with 0.
        assert has_series(samples, "funnel_stage_reentries_total", stage="customer")
        assert has_series(
            samples, "funnel_window_stage_entries", stage="mql", window="1d", period="current"
        )
    finally:
        worker.stop()


async def test_a_backlog_is_committed_as_soon_as_its_last_record_is_read(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    # More than one fetch takes, so that a fetch leaves a backlog behind it.
    count = MAX_RECORDS_PER_FETCH + 2 * BACKLOG_RECORDS
    names = TopicNames.from_prefix(topic_prefix)
    visits = [(f"v-{i}".encode(), _visit(f"e-{i}", f"v-{i}")) for i in range(count)]
    await produce(broker, [(names.visits, key, value, None) for key, value in visits])
    ends = await topic_end_offsets(broker, names.visits)

    worker = WorkerProcess(broker, topic_prefix, tmp_path).start()
    try:
        worker.wait_ready()
        deadline = time.monotonic() + 60
        while "caught up after a backlog" not in worker.tail(200):
            assert time.monotonic() < deadline, worker.tail()
            await asyncio.sleep(0.05)
        # Logged once the commit is done: the offsets are already at the ends, not up to a
        # commit interval later. (The embedded broker can report an end short of the last
        # record of a batch: at least the end, then.)
        committed = await consumer_group_offsets(broker, worker.app_id, [names.visits])
        behind = {p: end for p, end in ends.items() if committed.get((names.visits, p), 0) < end}
        assert not behind, (behind, committed)
        assert worker.metrics().value("funnel_events_applied_total", topic=names.visits) == count
    finally:
        assert worker.stop() == 0
