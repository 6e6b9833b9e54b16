"""The embedded broker: it starts, answers Kafka clients, and leaves no process behind."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from stream.errors import BrokerUnavailable
from stream.kafka.broker import EmbeddedBroker, run_foreground


def _tansu_pids(port: int) -> list[int]:
    """Pids of live Tansu processes listening on ``port`` (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked
            continue
        if Path(os.fsdecode(argv[0])).name == "tansu" and f":{port}".encode() in b" ".join(argv):
            pids.append(int(entry.name))
    return pids


def _port(bootstrap: str) -> int:
    return int(bootstrap.rsplit(":", 1)[1])


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_broker_answers_metadata_request(broker: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    advertised = [f"{b['host']}:{b['port']}" for b in cluster["brokers"]]
    assert advertised == [broker]


def test_start_on_taken_port_fails_in_one_line(broker: str) -> None:
    port = _port(broker)
    with pytest.raises(BrokerUnavailable, match=rf"^port {port} is already in use$"):
        EmbeddedBroker(port=port).start()
    assert len(_tansu_pids(port)) == 1  # only the session's broker


def test_unusable_address_fails_in_one_line() -> None:
    with pytest.raises(BrokerUnavailable, match=r"^cannot listen on 192\.0\.2\.1: [^\n]+$"):
        EmbeddedBroker(host="192.0.2.1")  # TEST-NET-1: never a local address
    with pytest.raises(BrokerUnavailable, match=r"^cannot listen on 192\.0\.2\.1:9092: [^\n]+$"):
        EmbeddedBroker(port=9092, host="192.0.2.1").start()


def test_stop_leaves_no_process() -> None:
    embedded = EmbeddedBroker()
    embedded.start()
    pid = embedded.pid
    assert pid is not None and _pid_exists(pid)
    with socket.create_connection(("127.0.0.1", embedded.port), timeout=2):
        pass

    embedded.stop()
    embedded.stop()  # idempotent

    assert not embedded.running and embedded.pid is None
    assert not _pid_exists(pid)
    assert _tansu_pids(embedded.port) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", embedded.port), timeout=2).close()


def test_context_manager_stops_on_error() -> None:
    with pytest.raises(RuntimeError, match="boom"), EmbeddedBroker() as embedded:
        port = embedded.port
        assert _tansu_pids(port)
        raise RuntimeError("boom")
    assert _tansu_pids(port) == []


_FOREGROUND = """
import sys
from stream.kafka.broker import run_foreground
sys.exit(run_foreground({port}, lambda bootstrap: print(bootstrap, flush=True)))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_run_foreground_stops_cleanly_on_signal(signum: signal.Signals) -> None:
    port = EmbeddedBroker().port  # a free port
    with subprocess.Popen(
        [sys.executable, "-c", _FOREGROUND.format(port=port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            with selectors.DefaultSelector() as selector:
                selector.register(child.stdout, selectors.EVENT_READ)
                assert selector.select(timeout=20), "run_foreground never reported ready"
            assert child.stdout.readline().strip() == f"127.0.0.1:{port}"
            assert len(_tansu_pids(port)) == 1
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass

            child.send_signal(signum)
            assert child.wait(timeout=15) == 0, child.communicate()[1]
            assert _tansu_pids(port) == []
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            for pid in _tansu_pids(port):
                os.kill(pid, signal.SIGKILL)


def test_run_foreground_exits_non_zero_when_the_broker_dies() -> None:
    port = EmbeddedBroker().port
    with subprocess.Popen(
        [sys.executable, "-c", _FOREGROUND.format(port=port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == f"127.0.0.1:{port}"
            (pid,) = _tansu_pids(port)
            os.kill(pid, signal.SIGKILL)
            assert child.wait(timeout=15) == 1
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert _tansu_pids(port) == []


def test_run_foreground_on_taken_port_raises_and_restores_handlers(broker: str) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    ready: list[str] = []
    with pytest.raises(BrokerUnavailable, match=rf"^port {_port(broker)} is already in use$"):
        run_foreground(_port(broker), ready.append)
    assert ready == []
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
