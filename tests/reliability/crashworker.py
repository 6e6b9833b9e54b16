"""``python -m tests.reliability.crashworker N``: ``funnel worker`` that dies like ``kill -9``
right after its N-th batch is applied and stored locally.

A test's crash point, at an instant a signal from outside cannot aim at: the batch's states
are in the local store and their changelog records in the producer's queue, not yet sent
(they leave within the producer's linger). ``os._exit`` runs no shutdown, flushes nothing and
commits nothing, as ``kill -9`` would.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from stream.cli.commands import main as funnel_main
from stream.runtime.worker import Worker

KILLED_EXIT = 137  # what a shell reports for a process killed by SIGKILL


def crash_after(batches: int) -> None:
    """Make the worker exit at once after handling ``batches`` fetches."""
    handle = Worker.handle_records
    handled = 0

    def handle_then_crash(self: Worker, fetch: Any) -> None:
        nonlocal handled
        handle(self, fetch)
        handled += 1
        if handled >= batches:
            os._exit(KILLED_EXIT)

    Worker.handle_records = handle_then_crash  # type: ignore[method-assign]


def main() -> int:
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m tests.reliability.crashworker BATCHES\n")
        return 2
    crash_after(int(sys.argv[1]))
    return funnel_main(["worker"])


if __name__ == "__main__":
    raise SystemExit(main())
