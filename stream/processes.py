"""Stopping a child process that leads its own process group: a signal, then SIGKILL.

The embedded broker, the demo's worker and the benchmark's children all run in a session of
their own (``start_new_session=True``), so that a terminal's Ctrl-C reaches only the parent
and the parent stops them in order; the group's id is then the child's pid.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from contextlib import suppress

__all__ = ["stop_process_group"]

log = logging.getLogger(__name__)


def stop_process_group(
    process: subprocess.Popen[bytes], grace_s: float, signum: int = signal.SIGTERM
) -> None:
    """Send ``signum`` to the group ``process`` leads, SIGKILL it after ``grace_s``, reap it.

    A process that has exited already is left alone, and a group that vanishes meanwhile is
    not an error, so stopping twice is safe. Returns once the process has been reaped.
    """
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        name = signal.Signals(signum).name
        log.warning("pid=%d did not stop on %s; sending SIGKILL", process.pid, name)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
