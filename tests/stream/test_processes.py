"""Stopping a child's process group: the signal first, SIGKILL only when it is ignored."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from stream.processes import stop_process_group


@contextmanager
def spawn(script: str) -> Iterator[subprocess.Popen[bytes]]:
    """``sh -c script`` leading its own group, once it has printed its first line."""
    with subprocess.Popen(
        ["sh", "-c", script], stdout=subprocess.PIPE, start_new_session=True
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == b"ready\n"
        yield process


def test_a_child_that_obeys_stops_on_the_signal() -> None:
    with spawn("echo ready; exec sleep 30") as process:
        started = time.monotonic()
        stop_process_group(process, grace_s=10.0)
    assert process.returncode == -signal.SIGTERM
    assert time.monotonic() - started < 5.0


def test_the_signal_can_be_another_one() -> None:
    with spawn("echo ready; exec sleep 30") as process:
        stop_process_group(process, grace_s=10.0, signum=signal.SIGINT)
    assert process.returncode == -signal.SIGINT


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An ignored signal stays ignored across exec, so the sleeping grandchild ignores it too.
    with spawn("trap '' TERM; echo ready; sleep 30; echo late") as process:
        started = time.monotonic()
        stop_process_group(process, grace_s=0.3)
    assert process.returncode == -signal.SIGKILL
    assert 0.3 <= time.monotonic() - started < 5.0
    assert f"pid={process.pid} did not stop on SIGTERM; sending SIGKILL" in caplog.text


def test_stopping_an_exited_process_twice_is_harmless() -> None:
    with spawn("echo ready") as process:
        process.wait()
        stop_process_group(process, grace_s=1.0)
        stop_process_group(process, grace_s=1.0)
    assert process.returncode == 0
