"""Process bodies of ``funnel worker`` and ``funnel generate``, with their start-up checks."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import signal
import time
from pathlib import Path

from stream.config.settings import Settings
from stream.config.topics import changelog_topics, rerouted_topics
from stream.errors import ConfigError, StateDirError
from stream.kafka.admin import ensure_topics, group_session_floor, wait_for_broker
from stream.kafka.security import client_kwargs

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 64 * 1024 * 1024
# Names the app id whose state a state directory holds. Faust keeps the tables at
# <data dir>/v1/tables/<table>-<partition>.db, without the app id, and each partition's
# store remembers the offset it read its changelog up to: opened by another app id, those
# offsets point past the end of this app's changelogs and Faust stops with a
# ConsistencyError at every start.
APP_ID_FILE = "funnel-app-id"


async def create_all_topics(settings: Settings) -> dict[str, str]:
    """Create the input, dead-letter and internal topics (idempotent)."""
    names = settings.topics
    wanted = {name: settings.partitions for name in (*names.inputs, names.dead_letter)}
    internal = (
        *changelog_topics(settings.app_id),
        *rerouted_topics(settings.app_id, names).values(),
    )
    wanted.update({name: settings.partitions for name in internal})
    kwargs = client_kwargs(settings.kafka)
    await wait_for_broker(settings.bootstrap_servers, settings.kafka.connect_timeout, **kwargs)
    report = await ensure_topics(settings.bootstrap_servers, wanted, client_kwargs=kwargs)
    for name, state in report.items():
        if state not in ("created", "exists"):
            # Tables are co-partitioned with their source topics: a mismatch cannot run.
            raise ConfigError(
                f"topic {name} {state.removeprefix('exists ')}: create the topics with "
                f"FUNNEL_PARTITIONS={settings.partitions} before any producer writes to them, "
                "or set FUNNEL_PARTITIONS to their partition count"
            )
    return report


async def session_timeout(settings: Settings, wanted: float) -> float:
    """``wanted``, or the cluster's minimum session timeout if that is higher."""
    floor = await group_session_floor(
        settings.bootstrap_servers, client_kwargs=client_kwargs(settings.kafka)
    )
    if floor is not None and floor > wanted:
        log.info("session timeout %.1f s: the cluster's minimum (wanted %.1f s)", floor, wanted)
        return floor
    return wanted


def check_data_dir(path: Path, app_id: str | None = None) -> None:
    """Refuse a state directory that cannot be created, written, has no room left, or holds
    the state of another ``app_id`` (which it is marked with on first use)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        raise StateDirError(f"state directory {path} is not writable: {reason}") from None
    free = shutil.disk_usage(path).free
    if free < MIN_FREE_BYTES:
        raise StateDirError(
            f"state directory {path} has {free // (1024 * 1024)} MiB free; at least "
            f"{MIN_FREE_BYTES // (1024 * 1024)} MiB are needed"
        )
    if app_id is not None:
        claim_data_dir(path, app_id)


def claim_data_dir(path: Path, app_id: str) -> None:
    """Mark ``path`` as ``app_id``'s state directory, or refuse it if another app's.

    A directory with tables but no mark was written before the mark existed: it is taken
    as this app's (as before), and marked.
    """
    mark = path / APP_ID_FILE
    try:
        owner = mark.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        owner = None
    except OSError as exc:
        raise StateDirError(f"state directory {path}: cannot read {mark.name}: {exc}") from None
    if owner is None:
        try:
            mark.write_text(app_id + "\n", encoding="utf-8")
        except OSError as exc:
            raise StateDirError(f"state directory {path} is not writable: {exc}") from None
    elif owner != app_id:
        raise StateDirError(
            f"state directory {path} holds the state of app id {owner!r}, not {app_id!r}: "
            "give each app id its own FUNNEL_DATA_DIR"
        )


def run_worker(settings: Settings) -> int:
    """Run one worker in the foreground until SIGINT/SIGTERM; returns the exit code."""
    import faust

    from stream.runtime.faustparts import SESSION_TIMEOUT_S
    from stream.runtime.worker import Worker

    if settings.store == "rocksdb":
        check_data_dir(settings.data_dir, settings.app_id)

    async def prepare() -> float:
        await create_all_topics(settings)
        return await session_timeout(settings, SESSION_TIMEOUT_S)

    worker = Worker(settings, session_timeout_s=asyncio.run(prepare()))
    log.info(
        "worker starting app_id=%s brokers=%s clock=%s store=%s metrics=http://%s:%s/metrics",
        settings.app_id,
        ",".join(settings.broker),
        settings.clock,
        settings.store,
        settings.web_bind,
        settings.web_port,
    )
    faust_worker = faust.Worker(worker.app, loglevel="INFO", quiet=True, redirect_stdouts=False)
    try:
        faust_worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def run_generate(
    settings: Settings, *, seed: int, rate: float, count: int | None, backfill_days: float
) -> int:
    """Produce synthetic events until ``count`` messages or SIGINT/SIGTERM."""
    from stream.generate import run_generator

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await create_all_topics(settings)
        started = time.monotonic()
        sent = await run_generator(
            bootstrap_servers=settings.bootstrap_servers,
            topics=settings.topics,
            seed=seed,
            rate=rate,
            count=count,
            backfill_days=backfill_days,
            client_kwargs=client_kwargs(settings.kafka),
            stop=stop,
        )
        log.info("generated messages=%s seconds=%.1f", sent, time.monotonic() - started)
        return 0

    return asyncio.run(main())
