"""Kafka administration with aiokafka: reachability, topics, offsets, security, the embedded broker.

No Faust here: the command line, the reports and the tests use these without a worker.
"""

from stream.kafka.admin import ensure_topics, wait_for_broker
from stream.kafka.broker import EmbeddedBroker, tansu_binary
from stream.kafka.offsets import consumer_group_offsets, read_topic, topic_end_offsets
from stream.kafka.security import client_kwargs, faust_credentials

__all__ = [
    "EmbeddedBroker",
    "client_kwargs",
    "consumer_group_offsets",
    "ensure_topics",
    "faust_credentials",
    "read_topic",
    "tansu_binary",
    "topic_end_offsets",
    "wait_for_broker",
]
