"""``funnel demo``: the embedded broker, the topics, one worker and the generator, with a view.

Everything runs on this machine and stops together: on Ctrl-C, SIGTERM, at the end of
``duration``, or when one part fails, the generator task ends, the worker subprocess gets
SIGTERM (SIGKILL after 10 s) and the broker stops. The view scrapes the worker's ``/metrics``
and asks its ``/leads`` for the five most urgent open leads every second (one request each):
a ``rich`` live display on a terminal, a plain-text snapshot every 5 s otherwise.

The demo's traffic is the generator's default profile (published conversion rates and
follow-up mix) with the sales cycle compressed from weeks to hours, so that a backfill of a
day already reaches every stage. The backfill holds at most ``BACKFILL_MESSAGES_PER_DAY`` per
day and ``BACKFILL_MAX_MESSAGES`` in all, which one worker catches up with in seconds; live
traffic then follows at ``rate`` (its density per day is far higher than the backfill's).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from stream.cli.demo_view import render_summary
from stream.cli.run import create_all_topics
from stream.config.loading import load_settings
from stream.config.settings import Settings
from stream.errors import BrokerUnavailable, FunnelError
from stream.generate import OutMessage, generate_messages, produce, run_generator
from stream.generate.profile import DAY_S, DEFAULT_PROFILE, HOUR_S
from stream.kafka.broker import EmbeddedBroker
from stream.kafka.security import client_kwargs
from stream.observability.scrape import (
    Samples,
    ScrapeError,
    fetch_json,
    fetch_metrics,
    fetch_status,
)
from stream.processes import stop_process_group

__all__ = ["DEMO_PROFILE", "DemoError", "WorkerFailed", "run_demo"]

log = logging.getLogger(__name__)

BROKER_PORT = 9092
WEB_PORT = 6066
HEALTH_TIMEOUT_S = 60.0
WORKER_STOP_GRACE_S = 10.0
GENERATOR_STOP_S = 10.0
REFRESH_S = 1.0
PLAIN_EVERY_S = 5.0
SCRAPE_TIMEOUT_S = 2.0
URGENT_LEADS = 5  # rows of the view's most urgent leads: one /leads request per refresh
BACKFILL_MESSAGES_PER_DAY = 60_000  # a day holds every stage (seed 1: 4 customers)
BACKFILL_MAX_MESSAGES = 100_000  # what one worker catches up with in well under a minute
LOG_TAIL_LINES = 20

DEMO_PROFILE = dataclasses.replace(
    DEFAULT_PROFILE,
    mql_delay_s=(60.0, 2 * HOUR_S),
    sql_delay_s=(300.0, 4 * HOUR_S),
    opportunity_delay_s=(600.0, 4 * HOUR_S),
    customer_delay_s=(1800.0, 6 * HOUR_S),
    disqualify_delay_s=(1800.0, 12 * HOUR_S),
    retouch_delay_s=(HOUR_S, DAY_S),
)


class DemoError(FunnelError):
    """The demo cannot start, or a part of it failed while it ran."""


class WorkerFailed(DemoError):
    """The worker subprocess exited or did not become healthy in time."""


def run_demo(
    config_path: str | Path | None,
    *,
    seed: int,
    rate: float,
    backfill_days: float,
    duration: float | None = None,
) -> int:
    """Run the demo until Ctrl-C, SIGTERM or ``duration`` seconds; returns the exit code."""
    if not rate > 0:
        raise DemoError(f"--rate must be > 0, got {rate:g}")
    if backfill_days < 0:
        raise DemoError(f"--backfill-days must not be negative, got {backfill_days:g}")
    settings = load_settings(config_path)
    return asyncio.run(_Demo(settings, config_path, (seed, rate, backfill_days)).run(duration))


def _bind(host: str, port: int) -> int | None:
    """The port if a listener could take ``host:port`` now (0: any free port), else None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # only a listener counts
        try:
            sock.bind((host, port))
        except OSError:
            return None
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """Send this process's log records to ``path`` (so they do not tear the live display)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.handlers = [handler]
    try:
        yield
    finally:
        root.handlers = saved
        handler.close()


async def _paced(messages: Iterator[OutMessage], stop: asyncio.Event) -> AsyncIterator[OutMessage]:
    """The backfill, yielding to the event loop (and checking ``stop``) every 4096 messages."""
    for index, message in enumerate(messages, 1):
        yield message
        if index % 4096 == 0:
            if stop.is_set():
                return
            await asyncio.sleep(0)


class _Demo:
    """One run of the demo: what it started, the generator's progress and the view."""

    def __init__(
        self, settings: Settings, config_path: str | Path | None, traffic: tuple[int, float, float]
    ) -> None:
        self.base, self.config_path = settings, config_path
        self.seed, self.rate, self.backfill_days = traffic
        self.tty = sys.stdout.isatty()
        # Not a terminal (CI, a pipe): plain text, wide enough for the tables.
        self.console = Console() if self.tty else Console(width=110, no_color=True)
        window = "1d" if "1d" in settings.funnel.windows else settings.funnel.windows[-1]
        self.view = settings.funnel.stages, window  # what the tables show
        self.started = time.monotonic()
        self.stop = asyncio.Event()  # Ctrl-C, SIGTERM
        self.stop_generator = asyncio.Event()
        self.tmp = Path(tempfile.mkdtemp(prefix="funnel-demo-"))
        self.log_path = self.tmp / "worker.log"
        self.broker: EmbeddedBroker | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.generating: asyncio.Task[None] | None = None
        self.sent = {"backfill": 0, "live": 0}
        self.backfill_done = False
        self.base_url = self.header = ""

    def say(self, text: str) -> None:
        """One line of the command's own output."""
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    async def run(self, duration: float | None) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop.set)
        clean = False
        with _logs_to(self.tmp / "demo.log") if self.tty else contextlib.nullcontext():
            try:
                settings = await self.start()
                if await self.wait_healthy():
                    self.generating = asyncio.create_task(self.generate(settings))
                    await self.show(duration)
                clean = True
            finally:
                await self.end_generator()
                if self.worker is not None:
                    stop_process_group(self.worker, WORKER_STOP_GRACE_S)
                if self.broker is not None:
                    self.broker.stop()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
                keep = not clean and self.worker is not None  # its log explains the failure
                if not keep:
                    shutil.rmtree(self.tmp, ignore_errors=True)
                if self.broker is not None:
                    self.say("demo stopped" + (f"; logs kept in {self.tmp}" if keep else ""))
        return 0

    async def start(self) -> Settings:
        """Broker (9092 if free), topics and the worker (6066 if free); the worker's settings."""
        web_host, port = self.base.web_bind, self.base.web_port
        if _bind(web_host, port) is None:
            if port != WEB_PORT:  # chosen on purpose with FUNNEL_WEB_PORT: refuse
                raise DemoError(f"web port {port} is already in use (FUNNEL_WEB_PORT)")
            port = _bind(web_host, 0) or 0
            self.say(f"web port {WEB_PORT} is in use, so the worker serves on {port}")
        host = "127.0.0.1"
        self.broker = broker = EmbeddedBroker(_bind(host, BROKER_PORT), host)
        broker.start()
        note = "" if broker.port == BROKER_PORT else f" (port {BROKER_PORT} is in use)"
        self.say(f"embedded broker: {broker.bootstrap}{note}, pid {broker.pid}")
        env = dict(os.environ)
        env.update(
            FUNNEL_BROKER=f"kafka://{broker.bootstrap}",
            FUNNEL_CLOCK="wall",
            FUNNEL_STORE="memory",  # the broker keeps data in memory; a disk store would outlive it
            FUNNEL_DATA_DIR=str(self.tmp / "data"),
            FUNNEL_WEB_PORT=str(port),
            FUNNEL_KAFKA_SECURITY_PROTOCOL="PLAINTEXT",
            PYTHONUNBUFFERED="1",
        )
        if self.config_path is not None:
            env["FUNNEL_CONFIG"] = str(Path(self.config_path).resolve())
        settings = load_settings(None, env)
        await create_all_topics(settings)
        with self.log_path.open("ab") as out:  # the child keeps its own descriptor
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "worker"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only the demo, which stops it in order
            )
        self.base_url = f"http://{'127.0.0.1' if web_host in ('0.0.0.0', '') else web_host}:{port}"
        self.say(f"worker: pid {self.worker.pid}, log {self.log_path}")
        self.say(f"metrics: {self.base_url}/metrics")
        self.header = (
            f"broker {broker.bootstrap} (pid {broker.pid}) · worker pid {self.worker.pid} · "
            f"metrics {self.base_url}/metrics\nworker log {self.log_path}"
        )
        return settings

    def worker_failed(self, message: str) -> WorkerFailed:
        """The error to raise, after showing the last lines of the worker's log on stderr."""
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            print(f"--- last lines of {self.log_path} ---", *lines, sep="\n", file=sys.stderr)
        return WorkerFailed(f"{message} (log: {self.log_path})")

    async def wait_healthy(self) -> bool:
        """True once /health answers 200; False if stopped first; WorkerFailed otherwise."""
        assert self.worker is not None
        self.say(f"waiting for the worker to become healthy ({self.base_url}/health) ...")
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while not self.stop.is_set():
            if (code := self.worker.poll()) is not None:
                raise self.worker_failed(f"the worker exited with code {code} before it was ready")
            with contextlib.suppress(ScrapeError):
                if await fetch_status(f"{self.base_url}/health", SCRAPE_TIMEOUT_S) == 200:
                    self.say(f"worker healthy after {time.monotonic() - self.started:.1f} s")
                    return True
            if time.monotonic() >= deadline:
                raise self.worker_failed(f"the worker was not healthy after {HEALTH_TIMEOUT_S:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.25)
        return False

    async def generate(self, settings: Settings) -> None:
        """The backfill (bounded volume per day), then live traffic at ``rate`` until stopped."""
        kwargs = client_kwargs(settings.kafka)
        servers, stop = settings.bootstrap_servers, self.stop_generator
        if (seconds := self.backfill_days * DAY_S) > 0:
            now = time.time()
            cap = min(BACKFILL_MESSAGES_PER_DAY / DAY_S, BACKFILL_MAX_MESSAGES / seconds)
            backfill = generate_messages(
                seed=self.seed,
                start=now - seconds,
                end=now,
                rate_per_s=min(self.rate, cap),
                profile=DEMO_PROFILE,
                topics=settings.topics,
            )
            await produce(
                _paced(backfill, stop),
                servers,
                client_kwargs=kwargs,
                on_progress=lambda n: self.sent.update(backfill=n),
            )
        self.backfill_done = True
        await run_generator(
            bootstrap_servers=servers,
            topics=settings.topics,
            seed=self.seed + 1,  # another stream: the backfill's event ids must not repeat
            rate=self.rate,
            profile=DEMO_PROFILE,
            client_kwargs=kwargs,
            stop=stop,
            on_progress=lambda n: self.sent.update(live=n),
        )

    async def end_generator(self) -> None:
        """Let the generator send what it holds (a few seconds at most), else cancel it."""
        task = self.generating
        if task is None:
            return
        self.stop_generator.set()
        await asyncio.wait([task], timeout=GENERATOR_STOP_S)
        task.cancel()
        await asyncio.wait([task])
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("generator ended with error=%r", exc)

    def check_alive(self) -> None:
        """Raise if the worker, the broker or the generator has failed."""
        assert self.worker is not None and self.broker is not None and self.generating is not None
        if (code := self.worker.poll()) is not None:
            raise self.worker_failed(f"the worker exited with code {code}")
        if not self.broker.running:
            raise BrokerUnavailable("the embedded broker exited unexpectedly")
        task = self.generating
        if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
            if isinstance(exc, FunnelError):
                raise exc
            raise DemoError(f"the generator failed: {exc}") from exc

    async def show(self, duration: float | None) -> None:
        """Refresh the view every second until stopped or ``duration``; a last one at the end."""
        samples: Samples | None = None
        leads: list[dict[str, Any]] | None = None
        live = Live(console=self.console, auto_refresh=False) if self.tty else None
        next_plain = time.monotonic() + PLAIN_EVERY_S
        deadline = self.started + (float("inf") if duration is None else duration)
        with live or contextlib.nullcontext():
            while True:
                self.check_alive()
                with contextlib.suppress(ScrapeError):
                    samples = await fetch_metrics(f"{self.base_url}/metrics", SCRAPE_TIMEOUT_S)
                with contextlib.suppress(ScrapeError, KeyError, TypeError):
                    # 503 while the worker rebalances: the last list stays on screen.
                    leads = list((await fetch_json(self.leads_url, SCRAPE_TIMEOUT_S))["leads"])
                now = time.monotonic()
                done = self.stop.is_set() or now >= deadline
                if live is not None:
                    live.update(self.render(samples, leads, "funnel demo"), refresh=True)
                elif done or now >= next_plain:
                    title = "funnel demo: final snapshot" if done else "funnel demo"
                    self.console.print(self.render(samples, leads, title))
                    next_plain = now + PLAIN_EVERY_S
                if done:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), REFRESH_S)

    def status_line(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        backfill, live = self.sent["backfill"], self.sent["live"]
        state = "done" if self.backfill_done else "running"
        return (
            f"elapsed {elapsed // 60:02d}:{elapsed % 60:02d} · generator sent "
            f"{backfill + live:,} messages (backfill of {self.backfill_days:g} d: {backfill:,}, "
            f"{state}; live at {self.rate:g}/s: {live:,})"
        )

    @property
    def leads_url(self) -> str:
        """The worker's most urgent open leads, soonest deadline first."""
        return f"{self.base_url}/leads?status=awaiting&limit={URGENT_LEADS}"

    def render(
        self, samples: Samples | None, leads: list[dict[str, Any]] | None, title: str
    ) -> RenderableType:
        """The whole view: where things are, the generator's progress, the metrics and the
        most urgent leads."""
        body = (
            [Text("(no metrics yet)")]
            if samples is None
            else render_summary(samples, *self.view, leads)
        )
        parts = [Text(self.header), Text(self.status_line()), *body]
        if self.tty:
            return Panel(Group(*parts), title=title, subtitle="Ctrl-C stops")
        return Group(Text(f"=== {title}"), *parts)
