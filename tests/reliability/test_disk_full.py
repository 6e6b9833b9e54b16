"""A full state directory: a clear one-line error and a non-zero exit, never silent loss.

The full disk is a real one: a small tmpfs mounted on ``FUNNEL_DATA_DIR`` in a private mount
namespace (``unshare -m`` as root, ``unshare -rm`` otherwise), which ends with the worker.
The test reaches the worker's view of it through ``/proc/PID/root``. Where mounting is
refused (no root, no user namespaces), the tests are skipped and say so.

- Too little room at start: the worker refuses to start (the state directory check).
- The disk fills while the worker runs: the next state write fails, and the worker exits at
  once with one line naming the cause, before the batch is committed. Restarted elsewhere,
  it replays that batch and ends exactly as the offline recount.
(An unwritable directory at start is tests/stream/test_cli.py's.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.core.rules import FunnelRules
from stream.topics import TopicNames
from tests.reliability.support import (
    WorkerProcess,
    closing_events,
    dead_letters,
    do_recount,
    expected_gauges,
    gauges,
    produce,
    read_records,
    rejections,
    traffic,
    wait_caught_up,
    wait_session_expiry,
)

UNSHARE = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]


def mount_refused(tmp_path: Path) -> str | None:
    """Why a private tmpfs cannot be mounted here, or None if it can."""
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        result = subprocess.run(
            [*UNSHARE, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if result.returncode == 0 else result.stderr.strip() or "mount failed"


@pytest.fixture
def tmpfs_ok(tmp_path: Path) -> None:
    reason = mount_refused(tmp_path)
    if reason:
        pytest.skip(f"cannot mount a private tmpfs here ({' '.join(UNSHARE)}): {reason}")


def start_on_tmpfs(worker: WorkerProcess, state: Path, size: str) -> subprocess.Popen[bytes]:
    """Start ``worker`` with ``FUNNEL_DATA_DIR`` on a private tmpfs of ``size``."""
    state.mkdir(parents=True, exist_ok=True)
    env = worker.env()
    env["FUNNEL_DATA_DIR"] = str(state)
    script = f'mount -t tmpfs -o size={size} tmpfs "{state}" && exec "$0" -m stream.cli worker'
    with worker.log_path.open("ab") as log:
        worker.process = subprocess.Popen(
            [*UNSHARE, "sh", "-c", script, sys.executable],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return worker.process


def error_lines(worker: WorkerProcess) -> list[str]:
    text = worker.log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if line.startswith("funnel worker:")]


@pytest.mark.usefixtures("tmpfs_ok")
def test_too_little_room_at_start_is_one_line(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(broker, topic_prefix, tmp_path)
    process = start_on_tmpfs(worker, tmp_path / "state", "1m")
    assert process.wait(30) != 0
    [line] = error_lines(worker)
    assert "MiB free" in line and str(tmp_path / "state") in line


@pytest.mark.usefixtures("tmpfs_ok")
async def test_disk_full_while_running_stops_and_loses_nothing(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    messages = traffic(names, 8000, seed=41)
    half = len(messages) // 2
    await produce(broker, messages[:half])
    worker = WorkerProcess(broker, topic_prefix, tmp_path)
    state = tmp_path / "state"
    process = start_on_tmpfs(worker, state, "80m")  # room enough to start (64 MiB needed)
    try:
        worker.wait_ready(timeout=60)
        await wait_caught_up(broker, worker.app_id, names.inputs)
        # Fill the worker's file system (seen through its own root) to the last byte.
        seen = Path(f"/proc/{process.pid}/root") / str(state).lstrip("/")
        with pytest.raises(OSError, match="No space left"), (seen / "filler").open("wb") as f:
            while True:
                f.write(bytes(1 << 20))
        await produce(broker, messages[half:] + closing_events(names))
        started = time.monotonic()
        while process.poll() is None:
            assert time.monotonic() - started < 60, worker.tail()
            await asyncio.sleep(0.2)
    finally:
        worker.kill()
    assert process.returncode == 74
    [line] = error_lines(worker)
    assert "No space left on device" in line and "replayed on restart" in line

    # Started again with room (the tmpfs went with the process): nothing was lost.
    await wait_session_expiry()
    again = WorkerProcess(broker, topic_prefix, tmp_path / "roomy").start()
    try:
        again.wait_ready(timeout=60)
        await wait_caught_up(broker, again.app_id, names.inputs)
        samples = again.metrics()
    finally:
        again.stop()
    records = await read_records(broker, names)
    assert gauges(samples) == expected_gauges(do_recount(records))
    letters = await dead_letters(broker, names)
    assert {x.source for x in letters} == rejections(records, FunnelRules().all_stages)
