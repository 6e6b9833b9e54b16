"""Test harness: real worker processes on the real embedded broker, and helpers around them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from stream.config.topics import TopicNames, rerouted_topic
from stream.kafka.admin import ensure_topics
from stream.kafka.offsets import consumer_group_offsets, read_topic, topic_end_offsets
from stream.observability.scrape import Samples, parse_metrics
from stream.processes import stop_process_group
from stream.report.recount import InputMessage


def has_series(samples: Samples, name: str, **labels: str) -> bool:
    """True if some series of ``name`` carries ``labels``."""
    return any(
        all(found.get(k) == v for k, v in labels.items()) for found, _ in samples.series(name)
    )


def all_series(samples: Samples) -> list[tuple[str, dict[str, str], float]]:
    """Every (sample name, labels, value) of a scrape."""
    return [(name, labels, v) for name in samples.names() for labels, v in samples.series(name)]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WorkerProcess:
    """One ``funnel worker`` subprocess with its own web port, log and state directory."""

    bootstrap: str
    prefix: str
    data_dir: Path
    clock: str = "event"
    store: str = "rocksdb"
    partitions: int = 8
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    # What runs: ``funnel worker``, or a test's wrapper of it (``-m`` and a module's arguments).
    command: tuple[str, ...] = ("-m", "stream.cli", "worker")
    process: subprocess.Popen[bytes] | None = None

    @property
    def app_id(self) -> str:
        return self.extra_env.get("FUNNEL_APP_ID", self.prefix.rstrip(".") + "-app")

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"worker-{self.port}.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
        env.update(
            FUNNEL_BROKER=self.bootstrap,
            FUNNEL_TOPIC_PREFIX=self.prefix,
            FUNNEL_APP_ID=self.app_id,
            FUNNEL_CLOCK=self.clock,
            FUNNEL_STORE=self.store,
            FUNNEL_DATA_DIR=str(self.data_dir),
            FUNNEL_WEB_PORT=str(self.port),
            FUNNEL_PARTITIONS=str(self.partitions),
        )
        env.update(self.extra_env)
        return env

    def start(self) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *self.command],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds until ``/health`` answered 200."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited {self.process.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url("/health"), timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready in {timeout}s: {self.tail()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as r:
            return str(r.read().decode())

    def metrics(self) -> Samples:
        return parse_metrics(self.metrics_text())

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """``kill -9``: no shutdown, no final commit."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 20 s); the exit code."""
        if self.process is None:
            return None
        stop_process_group(self.process, grace_s=20)
        return self.process.returncode


async def produce(
    bootstrap: str, messages: Iterable[tuple[str, bytes | None, bytes | None, int | None]]
) -> int:
    """Send (topic, key, value, partition or None) messages in order; returns how many.

    The topics are created first with 8 partitions, as ``funnel topics`` would: the broker
    would otherwise create them on first write with its own default.
    """
    messages = list(messages)
    await ensure_topics(bootstrap, {topic: 8 for topic, *_ in messages})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    n = 0
    try:
        futures = []
        for topic, key, value, partition in messages:
            futures.append(await producer.send(topic, value=value, key=key, partition=partition))
            n += 1
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


async def wait_caught_up(
    bootstrap: str, group_id: str, topics: Sequence[str], timeout: float = 120.0
) -> None:
    """Wait until the group has committed every offset of the input ``topics``, then every
    offset of the records moved from them to their home partitions (then metrics are final).

    The worker flushes the moved records before it commits the inputs' offsets, so the
    internal topics' ends read after the inputs are caught up hold all of them.
    """
    deadline = time.monotonic() + timeout
    await _wait_committed(bootstrap, group_id, topics, deadline, timeout)
    internal = [rerouted_topic(group_id, topic) for topic in topics]
    await _wait_committed(bootstrap, group_id, internal, deadline, timeout)


async def _wait_committed(
    bootstrap: str, group_id: str, topics: Sequence[str], deadline: float, timeout: float
) -> None:
    ends: dict[tuple[str, int], int] = {}
    for topic in topics:
        for partition, end in (await topic_end_offsets(bootstrap, topic)).items():
            ends[(topic, partition)] = end
    while True:
        committed = await consumer_group_offsets(bootstrap, group_id, topics)
        behind = {tp: end for tp, end in ends.items() if end and committed.get(tp, 0) < end}
        if not behind:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not caught up after {timeout}s: {len(behind)} partitions behind")
        await asyncio.sleep(0.5)


def owned(samples: Samples, topics: Sequence[str]) -> set[tuple[str, int]]:
    """The input partitions a worker exports (its lag series follow its assignment)."""
    return {
        (labels["topic"], int(labels["partition"]))
        for labels, _ in samples.series("funnel_consumer_lag_messages")
        if labels["topic"] in topics
    }


async def wait_split(
    workers: Sequence[WorkerProcess], topics: Sequence[str], partitions: int = 8
) -> None:
    """Wait until ``workers`` own every input partition exactly once, all of them some."""
    everything = {(t, p) for t in topics for p in range(partitions)}
    deadline = time.monotonic() + 90
    while True:
        try:
            shares = [owned(w.metrics(), topics) for w in workers]
        except OSError:
            shares = []
        complete = shares and all(shares) and sum(map(len, shares)) == len(everything)
        if complete and set().union(*shares) == everything:
            return
        assert time.monotonic() < deadline, [w.tail(5) for w in workers]
        await asyncio.sleep(0.3)


async def read_inputs(bootstrap: str, names: TopicNames) -> list[InputMessage]:
    """Every message of the input topics, in partition order per topic, each placed on its
    key's home partition of the 8 (as workers apply them)."""
    out: list[InputMessage] = []
    for topic, kind in names.kinds.items():
        records: list[Any] = await read_topic(bootstrap, topic)
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            out.append(InputMessage.at_home(kind, r.partition, r.key, r.value, 8))
    return out
