"""A worker that stands still past its session timeout in the middle of a fetch, and runs
again after another worker took its partitions over and went on: what it handles then must
not reach the changelog (docs/reliability.md, finding 6).

The group drops the paused worker; the second worker recovers every partition from the
changelog, replays the fetch the first never committed, and goes on with newer events for the
same visitors and leads. Continued, the first worker still holds that fetch, taken under its
old membership. Were its states written, they would land in the changelog after the second
worker's, older than them, and whoever recovers from the changelog next would take them for
the newest. So the first worker must stop without sending anything (its membership lease has
run out, ``stream.runtime.seam.membership``), and then:

- the second worker's gauges equal the offline recount;
- the first worker, restarted on its own state directory (which holds the states of the fetch
  it handled before stopping), rejoins, and the two workers' gauges equal the recount;
- a third worker with an empty store, recovering every partition from the changelog alone,
  has the recount's gauges.

The pause is ``SIGSTOP`` sent by the worker to itself (tests/reliability/pauseworker.py) when
its second fetch reaches the handler: the moment a pause does harm, which no signal from
outside can aim at.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from stream.config.topics import TopicNames
from stream.observability.scrape import Samples
from stream.report.recount import Recount
from stream.runtime.worker import BATCH_FAILED_EXIT
from tests.harness import wait_split
from tests.reliability.pauseworker import PAUSED
from tests.reliability.support import (
    WorkerProcess,
    closing_events,
    do_recount,
    expected_gauges,
    gauges,
    owners_lead_differences,
    produce,
    read_records,
    traffic,
    wait_caught_up,
)

MESSAGES = 6_000
SEED = 31


def _assert_exact(
    owners: list[tuple[WorkerProcess, Samples]], expected: Recount, names: TopicNames
) -> None:
    """The owners' gauges summed equal the recount's; else the owners are stopped and the
    leads whose stored states differ are named (``owners_lead_differences``)."""
    found, wanted = gauges(*(scrape for _, scrape in owners)), expected_gauges(expected)
    if found != wanted:
        for worker, _ in owners:
            worker.stop()
        differing = owners_lead_differences(expected, owners, names)
        assert found == wanted, (
            f"lead states stored unlike the recount's: {differing[:5] or 'none'}"
        )


async def _wait_paused(worker: WorkerProcess, timeout: float = 60) -> None:
    """Until the worker has stopped itself (its process state ``T``)."""
    assert worker.process is not None
    deadline = time.monotonic() + timeout
    while True:
        with open(f"/proc/{worker.process.pid}/stat", encoding="ascii") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
        if state == "T" and PAUSED in worker.tail(5):
            return
        assert time.monotonic() < deadline, worker.tail(20)
        await asyncio.sleep(0.1)


async def test_a_worker_paused_past_its_session_writes_nothing_when_it_runs_again(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    bootstrap = broker
    names = TopicNames.from_prefix(topic_prefix)
    messages = traffic(names, MESSAGES, seed=SEED)
    third = len(messages) // 3
    await produce(bootstrap, messages[:third])
    paused = WorkerProcess(
        bootstrap,
        topic_prefix,
        tmp_path / "first",
        command=("-m", "tests.reliability.pauseworker", "2"),
    )
    second = WorkerProcess(bootstrap, topic_prefix, tmp_path / "second")
    restarted = WorkerProcess(bootstrap, topic_prefix, tmp_path / "first")
    third_worker = WorkerProcess(bootstrap, topic_prefix, tmp_path / "third")
    workers = (paused, second, restarted, third_worker)
    try:
        paused.start().wait_ready(timeout=60)
        await wait_caught_up(bootstrap, paused.app_id, names.inputs)
        await produce(bootstrap, messages[third : 2 * third])  # the fetch it stops in
        await _wait_paused(paused)

        second.start().wait_ready(timeout=60)
        await wait_split([second], names.inputs)  # the paused worker was dropped
        await produce(bootstrap, messages[2 * third :])  # newer events, same visitors, leads
        await wait_caught_up(bootstrap, second.app_id, names.inputs)

        assert paused.process is not None
        os.killpg(paused.process.pid, signal.SIGCONT)
        assert paused.process.wait(60) == BATCH_FAILED_EXIT, paused.tail(20)
        assert "MembershipLost" in paused.tail(3), paused.tail(20)

        # The closing events again after every change of owners: committed only once the
        # new owners recovered their partitions and read them (a replay is a duplicate).
        await produce(bootstrap, closing_events(names))
        await wait_caught_up(bootstrap, second.app_id, names.inputs)
        expected = do_recount(await read_records(bootstrap, names))
        _assert_exact([(second, second.metrics())], expected, names)

        restarted.start().wait_ready(timeout=60)
        await wait_split([restarted, second], names.inputs)
        await produce(bootstrap, closing_events(names))
        await wait_caught_up(bootstrap, second.app_id, names.inputs)
        _assert_exact(
            [(restarted, restarted.metrics()), (second, second.metrics())], expected, names
        )

        assert restarted.stop() == 0, restarted.tail(20)
        assert second.stop() == 0, second.tail(20)
        third_worker.start().wait_ready(timeout=60)
        await wait_split([third_worker], names.inputs)
        await produce(bootstrap, closing_events(names))
        await wait_caught_up(bootstrap, third_worker.app_id, names.inputs)
        _assert_exact([(third_worker, third_worker.metrics())], expected, names)
    finally:
        for worker in workers:
            if worker.process is not None and worker.process.poll() is None:
                os.killpg(worker.process.pid, signal.SIGCONT)
            worker.stop()
