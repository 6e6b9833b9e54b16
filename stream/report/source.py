"""Reading the input topics back for a report or a measurement (the only I/O of the package)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from stream.config.funnel_rules import rules_from_settings
from stream.config.settings import Settings
from stream.kafka.admin import wait_for_broker
from stream.kafka.offsets import read_topic
from stream.kafka.security import client_kwargs
from stream.report.facts import Facts, collect
from stream.report.recount import InputMessage

log = logging.getLogger(__name__)

BROKER_WAIT_S = 10.0
READ_TIMEOUT_S = 600.0  # reading every input topic from the beginning, at most


async def read_inputs(
    settings: Settings, *, broker_wait: float = BROKER_WAIT_S
) -> list[InputMessage]:
    """Every message of the three input topics, per topic in partition and offset order.

    Raises ``BrokerUnavailable`` (one line naming the servers) if Kafka does not answer
    within ``broker_wait`` seconds.
    """
    kinds = settings.topics.kinds
    kwargs = client_kwargs(settings.kafka)
    await wait_for_broker(settings.bootstrap_servers, broker_wait, **kwargs)
    out: list[InputMessage] = []
    for topic, kind in kinds.items():
        records: list[Any] = await read_topic(
            settings.bootstrap_servers, topic, timeout=READ_TIMEOUT_S, client_kwargs=kwargs
        )
        partitions = settings.partitions
        out.extend(
            InputMessage.at_home(kind, r.partition, r.key, r.value, partitions) for r in records
        )
        log.debug("read topic=%s messages=%d", topic, len(records))
    return out


def read_facts(
    settings: Settings, *, now: float | None = None, broker_wait: float = BROKER_WAIT_S
) -> Facts:
    """Read the input topics and recount them with the configured rules and clock."""
    messages = asyncio.run(read_inputs(settings, broker_wait=broker_wait))
    wall = time.time() if now is None else now
    return collect(messages, rules_from_settings(settings), clock_mode=settings.clock, now=wall)
