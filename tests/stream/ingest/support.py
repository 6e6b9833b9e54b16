"""A ``funnel ingest`` subprocess on a broker, and helpers to read what it produced."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from schemas import Event, Rejection, TopicKind, classify
from stream.config.topics import TopicNames
from stream.kafka.offsets import read_topic
from stream.observability.scrape import Samples, parse_metrics
from stream.processes import stop_process_group
from tests.harness import free_port

WRITE_KEY = "test-write-key"
APP_SECRET = "test-hubspot-app-secret"
STAGES = frozenset(
    ("visit", "lead", "mql", "sql", "opportunity", "customer", "contacted", "disqualified")
)


@dataclass
class GatewayProcess:
    """One ``funnel ingest`` subprocess with its own port and log."""

    bootstrap: str
    prefix: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"ingest-{self.port}.log"

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
        env.update(
            FUNNEL_BROKER=self.bootstrap,
            FUNNEL_TOPIC_PREFIX=self.prefix,
            FUNNEL_INGEST_WRITE_KEYS=f"other-key,{WRITE_KEY}",
            FUNNEL_HUBSPOT_APP_SECRET=APP_SECRET,
            FUNNEL_INGEST_PORT=str(self.port),
        )
        env.update(self.extra_env)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "ingest"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited {self.process.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"gateway not ready in {timeout}s: {self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def metrics(self) -> Samples:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            return parse_metrics(r.read().decode())

    def stop(self) -> int | None:
        if self.process is None:
            return None
        stop_process_group(self.process, grace_s=20)
        return self.process.returncode


def basic_auth(key: str = WRITE_KEY) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST ``body``; the status, headers and body of the answer (errors too)."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


async def raw_values(bootstrap: str, names: TopicNames) -> bytes:
    """Every key and value of the input topics, concatenated (to look for what must not be)."""
    out = []
    for topic in names.inputs:
        for record in await read_topic(bootstrap, topic):
            out.append((record.key or b"") + b" " + (record.value or b""))
    return b"\n".join(out)


async def produced(bootstrap: str, names: TopicNames) -> dict[TopicKind, list[Event]]:
    """Every message of the input topics, each held to the contract by ``classify``."""
    kinds: dict[TopicKind, str] = {
        "visits": names.visits,
        "leads": names.leads,
        "transitions": names.transitions,
    }
    out: dict[TopicKind, list[Event]] = {}
    for kind, topic in kinds.items():
        out[kind] = []
        for record in await read_topic(bootstrap, topic):
            event = classify(kind, record.key, record.value, stages=STAGES)
            assert not isinstance(event, Rejection), (topic, event)
            out[kind].append(event)
    return out
