"""``python -m tests.reliability.pauseworker N``: ``funnel worker`` that stops itself with
``SIGSTOP`` when its N-th fetch reaches the handler, and handles it once continued.

A process standing still in the middle of its work, as a paused virtual machine or a long
swap would leave it, at an instant a signal from outside cannot aim at: the fetch is taken
(under the group membership of before the pause), nothing of it applied yet. A line on stderr
says when it stops, so the test knows the moment has come.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from stream.cli.commands import main as funnel_main
from stream.runtime.worker import Worker

PAUSED = "pauseworker: stopped before handling a fetch"


def pause_before(fetch_number: int) -> None:
    """Make the worker stop itself before handling its ``fetch_number``-th fetch."""
    handle = Worker.handle_records
    handled = 0

    def pause_then_handle(self: Worker, fetch: Any) -> None:
        nonlocal handled
        handled += 1
        if handled == fetch_number:
            sys.stderr.write(f"{PAUSED}\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGSTOP)
        handle(self, fetch)

    Worker.handle_records = pause_then_handle  # type: ignore[method-assign]


def main() -> int:
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m tests.reliability.pauseworker FETCH\n")
        return 2
    pause_before(int(sys.argv[1]))
    return funnel_main(["worker"])


if __name__ == "__main__":
    raise SystemExit(main())
