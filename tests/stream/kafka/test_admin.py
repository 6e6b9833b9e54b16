"""Kafka administration against the real embedded broker."""

from __future__ import annotations

import re
import ssl
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stream.config.topics import TopicNames
from stream.errors import BrokerUnavailable
from stream.kafka.admin import ensure_topics, group_session_floor, wait_for_broker
from stream.kafka.broker import EmbeddedBroker
from stream.kafka.offsets import consumer_group_offsets, read_topic, topic_end_offsets


async def test_wait_for_broker_returns_once_the_broker_answers(broker: str) -> None:
    started = time.monotonic()
    await wait_for_broker([broker], timeout=60)
    await wait_for_broker(f"kafka://{broker}", timeout=60)  # FUNNEL_BROKER's spelling
    # It returns on the first answer instead of waiting out its timeout (room for load).
    assert time.monotonic() - started < 30


async def test_wait_for_broker_on_closed_port_raises_one_line_within_timeout() -> None:
    address = f"127.0.0.1:{EmbeddedBroker().port}"  # a free port nobody listens on
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as raised:
        await wait_for_broker([address], timeout=1.0)
    elapsed = time.monotonic() - started
    # It retries until the timeout (a refusal at the first try is not final), then gives up
    # instead of hanging; the upper bound leaves room for a loaded machine.
    assert 0.9 <= elapsed < 10
    message = str(raised.value)
    assert "\n" not in message
    assert message == f"cannot reach Kafka at {address}: connection refused"


async def test_wait_for_broker_with_tls_against_plaintext_broker_fails_in_one_line(
    broker: str,
) -> None:
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=rf"^cannot reach Kafka at {broker}: ") as raised:
        await wait_for_broker(
            broker, timeout=2.0, security_protocol="SSL", ssl_context=ssl.create_default_context()
        )
    assert time.monotonic() - started < 12  # gives up after its timeout (2 s), with room
    # The TLS handshake itself gets no answer from a plaintext broker.
    assert re.search(r"no (Kafka )?answer", str(raised.value))
    assert "\n" not in str(raised.value)


async def test_ensure_topics_creates_then_reports_existing(broker: str, topic_prefix: str) -> None:
    names = TopicNames.from_prefix(topic_prefix).inputs
    wanted = dict.fromkeys(names, 8)

    assert await ensure_topics([broker], wanted) == dict.fromkeys(names, "created")
    assert await ensure_topics([broker], wanted) == dict.fromkeys(names, "exists")

    for name in names:
        assert await topic_end_offsets([broker], name) == dict.fromkeys(range(8), 0)


async def test_ensure_topics_reports_an_existing_topic_with_fewer_partitions(
    broker: str, topic_prefix: str
) -> None:
    name = f"{topic_prefix}leads"
    assert await ensure_topics(broker, {name: 4}) == {name: "created"}

    report = await ensure_topics(broker, {name: 8, f"{topic_prefix}visits": 8})

    assert report == {name: "exists (4 partitions, wanted 8)", f"{topic_prefix}visits": "created"}
    assert len(await topic_end_offsets(broker, name)) == 4


async def test_asking_about_an_unknown_topic_does_not_create_it(
    broker: str, topic_prefix: str
) -> None:
    name = f"{topic_prefix}never-written"

    assert await topic_end_offsets(broker, name) == {}
    assert await read_topic(broker, name) == []
    assert await consumer_group_offsets(broker, f"{topic_prefix}group", [name]) == {}
    # Had any of those auto-created it (as the broker does for named metadata requests),
    # it would exist now with the broker's default partitions.
    assert await ensure_topics(broker, {name: 2}) == {name: "created"}


async def test_produced_messages_are_seen_by_end_offsets_and_read_topic(
    broker: str, topic_prefix: str
) -> None:
    topic = TopicNames.from_prefix(topic_prefix).dead_letter
    await ensure_topics(broker, {topic: 8})
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(10)}
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        for key, value in sent.items():
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()

    ends = await topic_end_offsets(broker, topic)
    records = await read_topic(broker, topic, timeout=10)

    assert set(ends) == set(range(8))
    assert sum(ends.values()) == 10
    assert {record.key: record.value for record in records} == sent
    assert [(r.partition, r.offset) for r in records] == sorted(
        (r.partition, r.offset) for r in records
    )
    for partition, end in ends.items():
        assert [r.offset for r in records if r.partition == partition] == list(range(end))


async def test_messages_produced_in_batches_are_all_counted_and_read(
    broker: str, topic_prefix: str
) -> None:
    # The embedded broker's ListOffsets answers the last batch's base offset + 1; the real end
    # must still be found when batches hold many records.
    topic = f"{topic_prefix}leads"
    await ensure_topics(broker, {topic: 2})
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=50)
    await producer.start()
    try:
        sent = [await producer.send(topic, b"%d" % i, partition=i % 2) for i in range(500)]
        acknowledged = [await future for future in sent]
    finally:
        await producer.stop()
    assert max(meta.offset for meta in acknowledged) == 249

    assert await topic_end_offsets(broker, topic) == {0: 250, 1: 250}
    records = await read_topic(broker, topic)
    assert sorted(int(record.value) for record in records) == list(range(500))


async def test_consumer_group_offsets_are_the_committed_ones(
    broker: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}visits"
    group = f"{topic_prefix}worker"
    await ensure_topics(broker, {topic: 2})
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        for partition, count in ((0, 3), (1, 2)):
            for i in range(count):
                await producer.send_and_wait(topic, b"x%d" % i, partition=partition)
    finally:
        await producer.stop()
    assert await consumer_group_offsets(broker, group, [topic]) == {}

    consumer = AIOKafkaConsumer(bootstrap_servers=broker, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        await consumer.commit({TopicPartition(topic, 0): 3, TopicPartition(topic, 1): 1})
    finally:
        await consumer.stop()

    offsets = await consumer_group_offsets(broker, group, [topic, f"{topic_prefix}unknown"])
    assert offsets == {(topic, 0): 3, (topic, 1): 1}
    ends = await topic_end_offsets(broker, topic)
    lag = {tp: ends[tp[1]] - offset for tp, offset in offsets.items()}
    assert lag == {(topic, 0): 0, (topic, 1): 1}


async def test_the_embedded_broker_sets_no_session_floor(broker: str) -> None:
    # Apache Kafka answers group.min.session.timeout.ms; the embedded broker closes the
    # connection on DescribeConfigs, which must read as "no floor", not as an outage.
    assert await group_session_floor(broker) is None
