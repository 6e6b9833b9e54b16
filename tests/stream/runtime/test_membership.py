"""The group membership lease (stream/runtime/seam/membership.py) on a real consumer group of
the embedded broker: renewed by the join itself and by heartbeats, ended by a pause longer
than the session timeout, renewed again by the rejoin."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer

from stream.kafka.admin import ensure_topics
from stream.runtime.seam.membership import Membership

SESSION_MS = 2_000


async def _until(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_the_join_renews_the_lease_and_a_pause_past_the_session_ends_it(
    broker: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}membership"
    await ensure_topics(broker, {topic: 2})
    consumer = AIOKafkaConsumer(
        bootstrap_servers=[broker],
        group_id=f"{topic_prefix}group",
        session_timeout_ms=SESSION_MS,
        rebalance_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=SESSION_MS // 4,
    )
    membership = Membership()
    await consumer.start()
    try:
        membership.watch(consumer._coordinator)  # noqa: SLF001 (what the worker's thread does)
        assert membership.lease_s == SESSION_MS / 1000
        assert not membership.current()  # not joined: no member id yet
        consumer.subscribe([topic])
        fetching = asyncio.create_task(consumer.getmany(timeout_ms=30_000))
        await _until(lambda: consumer.assignment(), timeout=30)
        # The SyncGroup that gave the assignment renewed it: no heartbeat needed first.
        assert membership.current()
        renewed = membership.confirmed_at
        await asyncio.sleep(SESSION_MS / 1000 * 1.5)
        assert membership.current() and membership.confirmed_at > renewed  # heartbeats

        time.sleep(SESSION_MS / 1000 * 1.25)  # the loop, heartbeats and all, stands still
        assert not membership.current()
        assert f"session timeout ({SESSION_MS / 1000:g} s)" in str(membership.lost())

        # Running again: a heartbeat answered, or the group rejoined, makes it a member again.
        await _until(membership.current, timeout=30)
        fetching.cancel()
    finally:
        await consumer.stop()
