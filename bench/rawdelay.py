"""The raw client's processing delay: the floor under the worker's, measured the same way.

``python -m bench.rawdelay --broker HOST:PORT --topics a,b,c --count N`` runs a plain aiokafka
consumer (no group, from the topics' ends, the worker's fetch wait) that decodes every record
with ``classify`` and observes now minus the record timestamp into a histogram with the
worker's buckets. It prints ``ready`` once positioned, and the histogram in the Prometheus
text format after ``N`` records, so the harness computes its quantiles exactly as it does the
worker's (bench/latency.py). With ``--delays PATH`` it also appends every record's delay to
``PATH`` as a native float64, as bench/delayworker.py does for the worker, for exact
quantiles.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import sys
import time
from typing import Any, get_args

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from schemas import TopicKind, classify
from stream.config.settings import Settings
from stream.observability.buckets import DELAY_BUCKETS
from stream.observability.metrics import observe_ages
from stream.runtime.seam.transport import FETCH_MAX_WAIT_MS

DELAY = "funnel_processing_delay_seconds"


async def measure(broker: str, topics: list[str], count: int, delays: str | None = None) -> str:
    """Consume ``count`` new records of ``topics``; the delay histogram as exposition text.

    With ``delays``, every record's delay is also appended to that file (float64)."""
    out = None if delays is None else open(delays, "ab", buffering=0)  # noqa: SIM115
    registry = CollectorRegistry()
    delay = Histogram(
        DELAY, "Now minus record timestamp.", buckets=DELAY_BUCKETS, registry=registry
    )
    kinds: dict[str, TopicKind] = dict(zip(topics, get_args(TopicKind), strict=True))
    stages = frozenset(Settings().funnel.all_stages)
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=[broker],
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=500)  # resolves the positions: the ends, now
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        seen = 0
        while seen < count:
            batches: dict[Any, list[Any]] = await consumer.getmany(timeout_ms=1000)
            wall = time.time()  # the future-timestamp check's clock, once per fetch, as the worker
            for tp, records in batches.items():
                kind = kinds[tp.topic]
                for record in records:
                    classify(kind, record.key, record.value, stages=stages, now=wall)
                now = time.time()
                stamps = [r.timestamp / 1000.0 for r in records]
                observe_ages(delay, now, stamps)
                if out is not None:
                    array.array("d", [now - t if now > t else 0.0 for t in stamps]).tofile(out)
                seen += len(records)
    finally:
        await consumer.stop()
        if out is not None:
            out.close()
    return generate_latest(registry).decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topics", required=True, help="visits,leads,stage-transitions topics")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--delays", default=None, help="append every record's delay here")
    args = parser.parse_args()
    exposition = asyncio.run(measure(args.broker, args.topics.split(","), args.count, args.delays))
    sys.stdout.write(exposition)
    return 0


if __name__ == "__main__":
    sys.exit(main())
