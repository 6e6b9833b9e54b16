"""A worker that dies after storing a batch's states, before their changelog records leave the
process: what it stored still reaches the worker that takes its partitions over.

The worker writes a batch's states to its local store and queues their changelog records; the
producer sends them within its linger. A crash in between (``kill -9``, the OOM killer, a power
cut) leaves the local store ahead of the changelog. The restarted worker replays the batch from
the committed offsets and finds every event already applied: duplicates. Unless it writes
those states again, the changelog never gets them, and a worker that later recovers the
partitions from the changelog alone is missing them, for good: their offsets are committed.

No signal from outside can aim at that instant, so the first run is ``funnel worker`` through
tests/reliability/crashworker.py, which exits as ``kill -9`` would right after its first batch
(the whole backlog, one fetch). Then:

- the worker restarted on the same state directory counts every valid message of the backlog
  as a duplicate (its local store had them all);
- a second worker with an empty store joins and the first leaves: the second recovers every
  partition from the changelog alone, and its gauges equal the offline recount.
"""

from __future__ import annotations

from pathlib import Path

from stream.config.topics import TopicNames
from stream.kafka.broker import EmbeddedBroker
from stream.runtime.faustparts import MAX_RECORDS_PER_FETCH
from tests.harness import wait_split
from tests.reliability.crashworker import KILLED_EXIT
from tests.reliability.support import (
    WorkerProcess,
    closing_events,
    do_recount,
    expected_gauges,
    expected_oldest,
    gauges,
    oldest_open,
    owners_lead_differences,
    produce,
    read_records,
    traffic,
    wait_caught_up,
)

# One fetch holds it all (every input topic), so the batch the worker dies after has visits,
# leads and stage changes.
BACKLOG = MAX_RECORDS_PER_FETCH * 3 // 4
SEED = 31


async def test_states_stored_before_a_crash_reach_the_next_owner(
    topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    with EmbeddedBroker() as broker:  # of its own: one fetch must take the whole backlog
        bootstrap = broker.bootstrap
        await produce(bootstrap, traffic(names, BACKLOG, seed=SEED))
        crashing = WorkerProcess(
            bootstrap,
            topic_prefix,
            tmp_path / "first",
            command=("-m", "tests.reliability.crashworker", "1"),
        ).start()
        assert crashing.process is not None
        assert crashing.process.wait(120) == KILLED_EXIT, crashing.tail(40)
        backlog = do_recount(await read_records(bootstrap, names)).outcomes

        first = WorkerProcess(bootstrap, topic_prefix, tmp_path / "first")
        second = WorkerProcess(bootstrap, topic_prefix, tmp_path / "second")
        try:
            first.start().wait_ready(timeout=60)
            await wait_caught_up(bootstrap, first.app_id, names.inputs, timeout=180)
            replayed = first.metrics().value("funnel_events_duplicate_total")
            second.start().wait_ready(timeout=60)
            await wait_split([first, second], names.inputs)
            assert first.stop() == 0, first.tail(40)
            await wait_split([second], names.inputs)
            # Committed once the second worker has recovered every partition and read them.
            await produce(bootstrap, closing_events(names))
            await wait_caught_up(bootstrap, second.app_id, names.inputs, timeout=180)
            scrape = second.metrics()
            records = await read_records(bootstrap, names)
        finally:
            first.stop()
            second.stop()

    valid = sum(n for (_, outcome), n in backlog.items() if outcome in ("applied", "duplicate"))
    assert replayed == valid, "the restarted worker's store did not hold the whole batch"
    expected = do_recount(records)
    found, wanted = gauges(scrape), expected_gauges(expected)
    if found != wanted:
        differing = owners_lead_differences(expected, [(second, scrape)], names)
        assert found == wanted, (
            f"lead states stored unlike the recount's: {differing[:5] or 'none'}"
        )
    assert oldest_open(scrape) == expected_oldest(expected)
