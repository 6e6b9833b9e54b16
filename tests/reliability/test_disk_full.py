"""A full state directory: a clear one-line error and a non-zero exit, never silent loss.

The full disk is a real one: a small tmpfs mounted on ``FUNNEL_DATA_DIR`` in a private mount
namespace (``unshare -m`` as root, ``unshare -rm`` otherwise; ``nsenter`` starts workers in
it). The test reaches that file system through ``/proc/PID/root``. Where mounting is
refused (no root, no user namespaces), the tests fail and say why: a skip would hide that
the scenario did not run.

- Too little room at start: the worker refuses to start (the state directory check).
- The disk fills while the worker runs: the next state write fails, and the worker exits at
  once with one line naming the cause, before the batch is committed. Once space is freed
  and it is started again on the same files, it replays that batch and ends exactly as the
  offline recount.
(An unwritable directory at start is tests/stream/cli/test_cli.py's.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.config.topics import TopicNames
from stream.core.rules import FunnelRules
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
        # A full disk is what this test is about: without a small filesystem it cannot show
        # anything, and a skip would hide that (make test runs as root, which can mount).
        pytest.fail(f"cannot mount a private tmpfs here ({' '.join(UNSHARE)}): {reason}")


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


class MountNamespace:
    """A private mount namespace with a tmpfs on ``state``, held open by a sleeping process,
    so that workers can be started in it one after another on the same files."""

    def __init__(self, state: Path, size: str) -> None:
        state.mkdir(parents=True, exist_ok=True)
        self.state = state
        script = f'mount -t tmpfs -o size={size} tmpfs "{state}" && exec sleep 600'
        self.holder = subprocess.Popen([*UNSHARE, "sh", "-c", script], start_new_session=True)
        deadline = time.monotonic() + 10
        while f" {state} tmpfs " not in self.mounts():
            assert self.holder.poll() is None and time.monotonic() < deadline, "no tmpfs"
            time.sleep(0.05)

    def mounts(self) -> str:
        try:
            return Path(f"/proc/{self.holder.pid}/mounts").read_text()
        except OSError:
            return ""

    @property
    def seen(self) -> Path:
        """The tmpfs as the test sees it: through the holder's root."""
        return Path(f"/proc/{self.holder.pid}/root") / str(self.state).lstrip("/")

    def start(self, worker: WorkerProcess) -> subprocess.Popen[bytes]:
        """Start ``worker`` inside the namespace, with its state on the tmpfs."""
        enter = ["nsenter", "-t", str(self.holder.pid), "-m"]
        if UNSHARE[1] == "-rm":
            enter += ["-U", "--preserve-credentials"]
        env = worker.env()
        env["FUNNEL_DATA_DIR"] = str(self.state)
        with worker.log_path.open("ab") as log:
            worker.process = subprocess.Popen(
                [*enter, sys.executable, "-m", "stream.cli", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return worker.process

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait(10)


@pytest.mark.usefixtures("tmpfs_ok")
async def test_disk_full_while_running_stops_and_loses_nothing(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    messages = traffic(names, 8000, seed=41)
    half = len(messages) // 2
    await produce(broker, messages[:half])
    disk = MountNamespace(tmp_path / "state", "80m")  # room to start: 64 MiB are needed
    worker = WorkerProcess(broker, topic_prefix, tmp_path)
    try:
        process = disk.start(worker)
        worker.wait_ready(timeout=60)
        await wait_caught_up(broker, worker.app_id, names.inputs)
        # Fill the file system to the last byte, then send more events.
        with pytest.raises(OSError, match="No space left"), (disk.seen / "filler").open("wb") as f:
            while True:
                f.write(bytes(1 << 20))
        await produce(broker, messages[half:] + closing_events(names))
        started = time.monotonic()
        while process.poll() is None:
            assert time.monotonic() - started < 60, worker.tail()
            await asyncio.sleep(0.2)
        assert process.returncode == 74
        [line] = error_lines(worker)
        assert "No space left on device" in line and "replayed on restart" in line

        # The operator frees space and starts it again on the same files: nothing was lost.
        (disk.seen / "filler").unlink()
        disk.start(worker)
        worker.wait_ready(timeout=60)
        await wait_caught_up(broker, worker.app_id, names.inputs)
        samples = worker.metrics()
    finally:
        worker.stop()
        disk.close()
    records = await read_records(broker, names)
    assert gauges(samples) == expected_gauges(do_recount(records))
    letters = await dead_letters(broker, names)
    assert {x.source for x in letters} == rejections(records, FunnelRules().all_stages)
