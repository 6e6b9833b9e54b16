"""Synthetic funnel traffic: a seeded simulation (pure) and its producer to Kafka.

``generate_messages`` and ``TrafficGenerator`` build the messages without any I/O;
``produce`` and ``run_generator`` send them with aiokafka.
"""

from stream.generate.model import OutMessage, TrafficGenerator, generate_messages
from stream.generate.produce import produce, run_generator
from stream.generate.profile import TrafficProfile

__all__ = [
    "OutMessage",
    "TrafficGenerator",
    "TrafficProfile",
    "generate_messages",
    "produce",
    "run_generator",
]
