"""A real TLS handshake with the broker, and the security settings reaching every client.

The embedded broker speaks plaintext only, so Debian's ``stunnel4`` terminates TLS in front of
it with a certificate from a CA made here with ``openssl``; the broker advertises the stunnel
port, so clients stay on TLS after the bootstrap. ``funnel topics`` and a worker succeed with
the right CA (from ``[kafka] ssl_cafile``) and ``funnel topics`` fails in one line with
another CA. SASL cannot be tested for real (the embedded broker's SCRAM did not work:
docs/security.md), so its settings are checked where they enter the
Kafka clients.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from stream.config.loading import load_settings
from stream.config.topics import TopicNames
from stream.kafka.broker import tansu_binary
from stream.kafka.security import client_kwargs
from tests.reliability.support import START, WorkerProcess, free_port, visit

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> Path:
    """A self-signed CA: ``name.pem`` and ``name.key`` in ``directory``."""
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.pem"


def make_server_cert(directory: Path, ca: str) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1, signed by CA ``ca``."""
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    return directory / "server.pem", directory / "server.key"


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.05)


def spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """``(bootstrap, right CA, wrong CA)``: Tansu behind stunnel, advertising the TLS port."""
    if STUNNEL is None:
        pytest.fail("stunnel4 is not installed: apt-get install -y stunnel4 (make test does)")
    directory = tmp_path_factory.mktemp("tls")
    right, wrong = make_ca(directory, "right-ca"), make_ca(directory, "wrong-ca")
    cert, key = make_server_cert(directory, "right-ca")
    plain, tls = free_port(), free_port()
    config = directory / "stunnel.conf"
    config.write_text(
        f"foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls}\n"
        f"connect = 127.0.0.1:{plain}\ncert = {cert}\nkey = {key}\n"
    )
    tansu = spawn(
        [
            str(tansu_binary()), "broker", "--storage-engine", "memory://tansu/",
            "--listener-url", f"tcp://127.0.0.1:{plain}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{tls}",
        ],
        directory / "tansu.log",
    )  # fmt: skip
    stunnel = spawn([STUNNEL, str(config)], directory / "stunnel.log")
    try:
        wait_listening(plain, tansu)
        wait_listening(tls, stunnel)
        yield f"127.0.0.1:{tls}", right, wrong
    finally:
        for process in (stunnel, tansu):
            process.terminate()
            process.wait(10)


def funnel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def tls_env(bootstrap: str, ca: Path, tmp_path: Path, prefix: str) -> dict[str, str]:
    """Protocol from the environment, CA from the configuration file."""
    config = tmp_path / f"{ca.stem}.toml"
    config.write_text(f'[kafka]\nssl_cafile = "{ca}"\n')
    return {
        "FUNNEL_BROKER": bootstrap,
        "FUNNEL_CONFIG": str(config),
        "FUNNEL_KAFKA_SECURITY_PROTOCOL": "SSL",
        "FUNNEL_TOPIC_PREFIX": prefix,
    }


def test_topics_over_tls_with_the_right_ca(
    tls_broker: tuple[str, Path, Path], tmp_path: Path, topic_prefix: str
) -> None:
    bootstrap, right, _ = tls_broker
    result = funnel("topics", env=tls_env(bootstrap, right, tmp_path, topic_prefix))
    assert result.returncode == 0, result.stderr
    assert f"{topic_prefix}visits: created" in result.stdout


def test_a_wrong_ca_fails_in_one_line(
    tls_broker: tuple[str, Path, Path], tmp_path: Path, topic_prefix: str
) -> None:
    bootstrap, _, wrong = tls_broker
    result = funnel("topics", env=tls_env(bootstrap, wrong, tmp_path, topic_prefix))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("funnel ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0] and bootstrap in lines[0], lines[0]


async def test_a_worker_processes_events_over_tls(
    tls_broker: tuple[str, Path, Path], tmp_path: Path, topic_prefix: str
) -> None:
    bootstrap, right, _ = tls_broker
    names = TopicNames.from_prefix(topic_prefix)
    worker = WorkerProcess(bootstrap, topic_prefix, tmp_path / "state", store="memory")
    worker.extra_env.update(tls_env(bootstrap, right, tmp_path, topic_prefix))
    try:
        worker.start().wait_ready(timeout=60)  # it created its topics over TLS
        # The test's producer uses TLS too, with the same settings.
        kwargs = client_kwargs(load_settings(environ=worker.extra_env).kafka)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **kwargs)
        await producer.start()
        try:
            for i in range(20):
                topic, key, value, _ = visit(names, f"tls-{i}", f"tls-visitor-{i}", START + i)
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()
        deadline = time.monotonic() + 30
        while worker.metrics().value("funnel_events_applied_total") < 20:
            assert time.monotonic() < deadline, worker.tail()
            await asyncio.sleep(0.2)
    finally:
        worker.stop()
