"""The ``funnel`` command line: one-line failures, and the broker command's life cycle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import free_port


def funnel(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("funnel ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0]


@pytest.mark.parametrize("command", ["topics", "worker", "ingest"])
def test_unreachable_broker_is_one_line(command: str, tmp_path: Path) -> None:
    port = free_port()
    result = funnel(
        command, env={"FUNNEL_BROKER": f"127.0.0.1:{port}", "FUNNEL_DATA_DIR": str(tmp_path)}
    )
    assert_one_line_failure(result, f"127.0.0.1:{port}")


@pytest.mark.parametrize("command", ["topics", "worker", "generate", "demo", "ingest"])
def test_bad_config_is_one_line_naming_the_key(command: str, tmp_path: Path) -> None:
    config = tmp_path / "funnel.toml"
    config.write_text("[north_star.conversion]\nmql = 1.5\n")
    result = funnel("--config", str(config), command)
    assert_one_line_failure(result, "north_star.conversion.mql")


def test_ingest_on_a_port_in_use_is_one_line(broker: str, topic_prefix: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"FUNNEL_BROKER": broker, "FUNNEL_TOPIC_PREFIX": topic_prefix}
        result = funnel("ingest", "--port", str(port), env=env)
    assert_one_line_failure(result, f"cannot listen on 127.0.0.1:{port}")


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "funnel.toml"
    config.write_text("[labels]\ncolour = 'blue'\n")
    assert_one_line_failure(funnel("--config", str(config), "topics"), "labels.colour")


def test_unwritable_data_dir_is_one_line(tmp_path: Path, broker: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = funnel(
        "worker", env={"FUNNEL_BROKER": broker, "FUNNEL_DATA_DIR": str(blocker / "state")}
    )
    assert_one_line_failure(result, "not writable")


def test_topics_is_idempotent(broker: str, topic_prefix: str) -> None:
    env = {"FUNNEL_BROKER": broker, "FUNNEL_TOPIC_PREFIX": topic_prefix}
    first = funnel("topics", env=env)
    assert first.returncode == 0, first.stderr
    assert f"{topic_prefix}visits: created" in first.stdout
    second = funnel("topics", env=env)
    assert second.returncode == 0, second.stderr
    assert f"{topic_prefix}visits: exists" in second.stdout
    assert f"{topic_prefix}dead-letter: exists" in second.stdout


def test_broker_prints_its_address_and_stops_on_sigint() -> None:
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert f"127.0.0.1:{port}" in line
            process.send_signal(signal.SIGINT)
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
    # The broker's port is free again: nothing was left behind.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_schema_writes_every_event_type(tmp_path: Path) -> None:
    result = funnel("schema", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lead_created.json",
        "stage_changed.json",
        "visit.json",
    ]
