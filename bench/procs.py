"""Child processes of the benchmark: the funnel worker, the naive Faust app, the ingest
gateway and py-spy.

Each child runs in its own session (a terminal's Ctrl-C reaches only the harness), writes its
output to a log file, and is registered in a :class:`Children` set that stops every one of them
when the harness ends, however it ends. A child's HTTP endpoints are read with
:mod:`stream.observability.scrape`; its memory with ``/proc/<pid>/status``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.observability.scrape import Samples, ScrapeError, fetch_metrics, fetch_status
from stream.processes import stop_process_group

log = logging.getLogger(__name__)

_STOP_GRACE_S = 20.0
_HTTP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ChildFailed(RuntimeError):
    """A child process exited, or did not reach a state, when the benchmark needed it to."""


@dataclass
class Child:
    """One child process: its command, environment, log file and (for web apps) port."""

    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def start(self) -> Child:
        """Spawn the process (in its own session) and note the monotonic start time."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.started_at = time.monotonic()
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.debug("started name=%s pid=%s log=%s", self.name, self.process.pid, self.log_path)
        return self

    @property
    def pid(self) -> int:
        """The process id (the child must have been started)."""
        if self.process is None:
            raise ChildFailed(f"{self.name} was never started")
        return self.process.pid

    def check_alive(self) -> None:
        """Raise :class:`ChildFailed`, with the log's tail, if the process has exited."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise ChildFailed(f"{self.name} exited with code {code}; log tail:\n{self.tail()}")

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the child's process group, if it still runs."""
        if self.process is not None and self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no final commit; waits until the process is gone."""
        if self.process is not None and self.process.poll() is None:
            self.signal_group(signal.SIGKILL)
            self.process.wait(30)

    def stop(self, grace_s: float = _STOP_GRACE_S, signum: int = signal.SIGTERM) -> None:
        """Stop the child: ``signum`` (SIGTERM), then SIGKILL after ``grace_s``; idempotent."""
        if self.process is not None:
            stop_process_group(self.process, grace_s, signum)

    def url(self, path: str) -> str:
        """``http://127.0.0.1:<port><path>``."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def health(self) -> int | None:
        """The HTTP status of ``/health``, or None while nothing answers."""
        try:
            return await fetch_status(self.url("/health"), _HTTP_TIMEOUT_S)
        except ScrapeError:
            return None

    async def metrics(self) -> Samples:
        """One scrape of ``/metrics``."""
        return await fetch_metrics(self.url("/metrics"), _HTTP_TIMEOUT_S)

    def memory_mb(self, key: str = "VmHWM") -> float | None:
        """A memory figure of ``/proc/<pid>/status`` (VmHWM: peak RSS; VmRSS) in MiB."""
        try:
            kb = status_kb(self.pid, key)
        except ChildFailed:
            return None
        return None if kb is None else kb / 1024

    def cpu_seconds(self) -> float | None:
        """User and system CPU time of the child so far (``/proc/<pid>/stat``), all threads."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except (OSError, ChildFailed):
            return None
        # After the command name (in parentheses, may hold spaces): utime and stime are the
        # 12th and 13th fields, in clock ticks.
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 25) -> str:
        """The last lines of the child's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Children:
    """Every child the harness started; :meth:`stop_all` ends those still running."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def start(self, child: Child) -> Child:
        """Register ``child`` and start it."""
        self._children.append(child)
        return child.start()

    def stop_all(self) -> None:
        """Stop every child still running, the last started first."""
        for child in reversed(self._children):
            try:
                child.stop()
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("could not stop name=%s: %s", child.name, exc)
        self._children.clear()


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (``/proc/<pid>/task/<tid>/children``)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as file:
                    todo.extend(int(child) for child in file.read().split())
    return found


def _memory_kb(pid: int) -> tuple[int, int, int]:
    """(RSS, PSS, peak RSS) of ``pid`` in KiB, zeros once it is gone."""
    rss = pss = 0
    with suppress(OSError), open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as file:
        for line in file:
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    return rss, pss, status_kb(pid, "VmHWM") or 0


def status_kb(pid: int, key: str) -> int | None:
    """The figure ``key`` (VmHWM, VmRSS, …) of ``/proc/<pid>/status`` in KiB; None once the
    process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None


def tree_memory_peaks(
    pid: int, done: Callable[[], bool], every_s: float = 0.05
) -> tuple[float, float, float]:
    """The peak over time of the summed RSS and of the summed PSS (MB) of ``pid`` and its
    descendants, sampled every ``every_s`` until ``done()``, and the largest peak RSS of any
    one of them (its ``VmHWM``: the kernel's own high-water mark, missing only what a process
    adds in its last ``every_s``).

    A report reading in several processes counts each one: the sum of their RSS counts a
    page they share once per process (at most what they use), their PSS shares it out. The
    largest process is not taken from ``wait4``: Linux keeps in a child's ``ru_maxrss`` the
    peak of the memory it ran in before its ``exec``, and a child started by ``subprocess``
    (``vfork``) ran in the harness's, which held about 400 MB at the end of a full run.
    """
    peak_rss = peak_pss = largest = 0
    while not done():
        sizes = [_memory_kb(p) for p in _descendants(pid)]
        peak_rss = max(peak_rss, sum(rss for rss, _, _ in sizes))
        peak_pss = max(peak_pss, sum(pss for _, pss, _ in sizes))
        largest = max([largest, *(hwm for _, _, hwm in sizes)])
        time.sleep(every_s)
    return peak_rss / 1024, peak_pss / 1024, largest / 1024


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    env.update(extra)
    return env


def worker_child(
    *,
    bootstrap: str,
    prefix: str,
    app_id: str,
    data_dir: Path,
    log_dir: Path,
    delays: Path | None = None,
) -> Child:
    """A ``funnel worker`` (``python -m stream.cli worker``): event clock, RocksDB, 8 partitions.

    With ``delays``, the same worker through :mod:`bench.delayworker`, which also appends
    every record's processing delay to that file.
    """
    port = free_port()
    env = _clean_env(
        {
            "FUNNEL_BROKER": bootstrap,
            "FUNNEL_TOPIC_PREFIX": prefix,
            "FUNNEL_APP_ID": app_id,
            "FUNNEL_CLOCK": "event",
            "FUNNEL_STORE": "rocksdb",
            "FUNNEL_DATA_DIR": str(data_dir),
            "FUNNEL_WEB_PORT": str(port),
            "FUNNEL_PARTITIONS": "8",
        }
    )
    return Child(
        name=f"worker {app_id}",
        command=(
            [sys.executable, "-m", "stream.cli", "worker"]
            if delays is None
            else [sys.executable, "-m", "bench.delayworker", str(delays)]
        ),
        log_path=log_dir / f"{app_id}-{port}.log",
        env=env,
        port=port,
    )


def ingest_child(*, bootstrap: str, prefix: str, write_key: str, log_dir: Path) -> Child:
    """``funnel ingest`` (``python -m stream.cli ingest``) on a free port, 8 partitions."""
    port = free_port()
    env = _clean_env(
        {
            "FUNNEL_BROKER": bootstrap,
            "FUNNEL_TOPIC_PREFIX": prefix,
            "FUNNEL_INGEST_WRITE_KEYS": write_key,
            "FUNNEL_PARTITIONS": "8",
        }
    )
    return Child(
        name="ingest gateway",
        command=[sys.executable, "-m", "stream.cli", "ingest", "--port", str(port)],
        log_path=log_dir / f"ingest-{port}.log",
        env=env,
        port=port,
    )


def naive_child(
    *, bootstrap: str, topics: Sequence[str], app_id: str, data_dir: Path, log_dir: Path
) -> Child:
    """The naive Faust app of :mod:`bench.naive_app` on ``topics``."""
    port = free_port()
    command = [sys.executable, "-m", "bench.naive_app", "--broker", bootstrap]
    command += ["--app-id", app_id, "--port", str(port), "--data-dir", str(data_dir)]
    command += ["--topics", ",".join(topics)]
    return Child(
        name=f"naive {app_id}",
        command=command,
        log_path=log_dir / f"{app_id}-{port}.log",
        env=_clean_env({}),
        port=port,
    )


def raw_delay_child(
    *, bootstrap: str, topics: Sequence[str], count: int, log_dir: Path, delays: Path
) -> Child:
    """The raw client's delay measurement of :mod:`bench.rawdelay` on ``topics``; every
    record's delay is appended to ``delays``."""
    command = [sys.executable, "-m", "bench.rawdelay", "--broker", bootstrap]
    command += ["--topics", ",".join(topics), "--count", str(count), "--delays", str(delays)]
    return Child(
        name="raw client delay",
        command=command,
        log_path=log_dir / "raw-delay.log",
        env=_clean_env({}),
    )


async def fetch_json(url: str) -> Any:
    """GET ``url`` and decode its JSON body (a thread does the blocking request)."""

    def get() -> Any:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as response:
            return json.loads(response.read())

    try:
        return await asyncio.to_thread(get)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ScrapeError(f"cannot read {url}: {exc}") from None
