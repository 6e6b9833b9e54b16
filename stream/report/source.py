"""Reading the input topics back for a report or a measurement (the only I/O of the package).

The records are applied as they arrive (``Collector``), per topic in partition and offset
order, each on its key's home partition: nothing holds the topics in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time

from stream.config.funnel_rules import rules_from_settings
from stream.config.settings import Settings
from stream.kafka.admin import bootstrap_list, wait_for_broker
from stream.kafka.offsets import topic_end_offsets
from stream.kafka.partitioner import home_partition
from stream.kafka.scan import librdkafka_config, scan_topic
from stream.kafka.security import client_kwargs
from stream.report.facts import Collector, Facts

log = logging.getLogger(__name__)

OFFSETS_TIMEOUT_S = 60.0  # asking for the end offsets of one topic, at most


async def _end_offsets(settings: Settings, broker_wait: float) -> dict[str, dict[int, int]]:
    """Each input topic's end offsets (the read stops there), once Kafka answers.

    Raises ``BrokerUnavailable`` (one line naming the servers) if Kafka does not answer
    within ``broker_wait`` seconds.
    """
    kwargs = client_kwargs(settings.kafka)
    await wait_for_broker(settings.bootstrap_servers, broker_wait, **kwargs)
    return {
        topic: await topic_end_offsets(
            settings.bootstrap_servers, topic, timeout=OFFSETS_TIMEOUT_S, client_kwargs=kwargs
        )
        for topic in settings.topics.kinds
    }


def read_facts(
    settings: Settings, *, now: float | None = None, broker_wait: float | None = None
) -> Facts:
    """Read the input topics and recount them with the configured rules and clock.

    Waits ``broker_wait`` seconds for Kafka to answer (``kafka.connect_timeout`` if None).
    """
    wait = settings.kafka.connect_timeout if broker_wait is None else broker_wait
    ends = asyncio.run(_end_offsets(settings, wait))
    wall = time.time() if now is None else now
    collector = Collector(rules_from_settings(settings), clock_mode=settings.clock, now=wall)
    add, partitions = collector.add, settings.partitions
    servers = bootstrap_list(settings.bootstrap_servers)
    config = librdkafka_config(settings.kafka)
    for topic, kind in settings.topics.kinds.items():
        read = 0
        for partition, records in scan_topic(servers, topic, ends[topic], config=config):
            read += len(records)
            for key, value in records:
                # Applied where the worker applies it: its key's home partition.
                home = partition if key is None else home_partition(key, partitions)
                add(kind, home, key, value)
        collector.read_all(kind)
        log.debug("read topic=%s messages=%d", topic, read)
    return collector.finish()
