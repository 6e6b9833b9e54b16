"""A worker told to stop (SIGTERM) while its group rebalances stops cleanly: exit 0, no crash.

Faust stops the fetcher at every rebalance and treats its cancellation as a crash to restart
it from; when the worker is shutting down at that moment, that crash reached the process and
it exited 1 with a traceback ("We experienced a crash!"), as ``make test`` once saw a worker
leave a group that a third had just joined. Here a second worker joins and the first is
stopped the moment its ``/health`` says it is rebalancing.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

from stream.config.topics import TopicNames
from tests.reliability.support import WorkerProcess, produce, traffic

EVENTS = 2000
SEED = 29
ROUNDS = 2


def _rebalancing(worker: WorkerProcess) -> bool:
    try:
        with urllib.request.urlopen(worker.url("/health"), timeout=1):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code == 503
    except (urllib.error.URLError, OSError):
        return False


async def test_a_worker_stopped_while_its_group_rebalances_exits_cleanly(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    await produce(broker, traffic(names, EVENTS, seed=SEED))
    running: list[WorkerProcess] = []
    try:
        for round_ in range(ROUNDS):
            first = WorkerProcess(broker, topic_prefix, tmp_path / f"first-{round_}").start()
            running.append(first)
            first.wait_ready(timeout=60)
            second = WorkerProcess(broker, topic_prefix, tmp_path / f"second-{round_}").start()
            running.append(second)
            deadline = time.monotonic() + 60
            while not _rebalancing(first):
                assert time.monotonic() < deadline, f"round {round_}: no rebalance seen"
                time.sleep(0.02)
            code = first.stop()
            log = first.log_path.read_text(errors="replace")
            assert code == 0, f"round {round_}: exit {code}\n{first.tail(40)}"
            assert "crash" not in log.lower(), f"round {round_}:\n{first.tail(40)}"
            # The second, left alone, takes every partition back and stops as cleanly.
            second.wait_ready(timeout=60)
            assert second.stop() == 0, f"round {round_}:\n{second.tail(40)}"
    finally:
        for worker in running:
            worker.stop()
