"""Bad input never crashes or stalls the worker, and never goes missing.

- Fuzzing: hypothesis draws arbitrary bytes and keys, near-valid JSON (fields dropped or
  retyped, wrong topics, truncation, garbage, a BOM), unicode edge cases (NUL, lone
  surrogates, right-to-left override, astral planes, the longest ids and one past them), huge
  fields and deep nesting, into every input topic. The worker catches up, stays up, counts
  ``consumed = applied + duplicate + rejected`` per topic exactly as the offline recount
  classifies the messages, and the dead-letter topic holds every rejected message once, with
  its original bytes.
- Poison and oversized messages: one poison message repeated 10,000 times, and messages of
  up to 1.2 MB (some larger than the producer's request limit: dead-lettered without their
  value), mixed into normal traffic, keep the stream at 50 % or more of the rate the same
  worker reached on normal traffic just before: messages per second of the worker's own
  CPU time, each batch produced before it is timed, each rate the better of two rounds
  (``support.best_rate``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from stream.config.topics import TopicNames
from stream.core.rules import FunnelRules
from tests.reliability.fuzz import arbitrary, corpus, near_valid, oversized
from tests.reliability.support import (
    END,
    START,
    Message,
    WorkerProcess,
    best_rate,
    closing_events,
    dead_letters,
    do_recount,
    read_records,
    rejections,
    send_all,
    traffic,
    visit,
    wait_caught_up,
)

POISON_COPIES = 10_000
NORMAL = int(os.environ.get("BAD_INPUT_NORMAL_EVENTS", "10000"))
# Each rate is the best of this many rounds: on the 2-core machine the poisoned phase's rate
# moved by more than the margin between runs (docs/reliability.md, "Scenarios").
ROUNDS = 3


async def test_fuzzed_input_is_counted_and_dead_lettered_exactly(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    fuzzed = (
        corpus(near_valid(names), 600)
        + corpus(arbitrary(names), 300)
        + corpus(oversized(names), 20)
    )
    worker = WorkerProcess(broker, topic_prefix, tmp_path / "state").start()
    try:
        worker.wait_ready(timeout=60)
        await send_all(broker, fuzzed + closing_events(names))
        await wait_caught_up(broker, worker.app_id, names.inputs, timeout=60)
        samples = worker.metrics()
        assert worker.process is not None and worker.process.poll() is None
    finally:
        worker.stop()
    assert "Traceback" not in worker.log_path.read_text(errors="replace")

    records = await read_records(broker, names)
    expected = do_recount(records)
    applied: dict[str, float] = {}
    for topic, kind in names.kinds.items():
        n = {
            outcome: samples.value(f"funnel_events_{outcome}_total", topic=topic)
            for outcome in ("consumed", "applied", "duplicate", "rejected")
        }
        assert n["consumed"] == n["applied"] + n["duplicate"] + n["rejected"], (topic, n)
        want = {o: c for (k, o), c in expected.outcomes.items() if k == kind}
        assert n["consumed"] == sum(want.values())
        assert n["applied"] + n["duplicate"] == want.get("applied", 0) + want.get("duplicate", 0)
        applied[kind] = n["applied"] - want.get("applied", 0)
        for (k, reason), count in expected.outcomes.items():
            if k == kind and reason not in ("applied", "duplicate"):
                assert samples.value(
                    "funnel_events_rejected_total", topic=topic, reason=reason
                ) == (count)

    # A lead's events share one event_id space across both lead topics, which are read in
    # any interleaving: when a lead_created and a stage_changed carry the same id, which of
    # the two is the duplicate depends on that order, but one of them is applied (their
    # times are within the duplicate horizon of each other: fuzz.LEAD_TIMES).
    assert applied["visits"] == 0
    assert applied["leads"] + applied["transitions"] == 0

    letters = await dead_letters(broker, names)
    wanted = rejections(records, FunnelRules().all_stages)
    assert len(wanted) > 800
    assert sorted(letter.source for letter in letters) == sorted(wanted)  # each exactly once
    originals = {(r.topic, r.partition, r.offset): (r.key, r.value) for r in records}
    for letter in letters:
        assert (letter.key, letter.value) == originals[letter.source[:3]]


def poison(names: TopicNames) -> Message:
    """A message that fails validation on every field, about 1 kB."""
    body = {
        "event_id": [1],
        "type": "visit",
        "occurred_at": 5,
        "visitor_id": {},
        "source": None,
        "page": [1] * 300,
    }
    return (names.visits, b"poison", json.dumps(body).encode(), None)


def spread(few: list[Message], many: list[Message]) -> list[Message]:
    """``few`` spread evenly through ``many``."""
    out: list[Message] = []
    i = j = 0
    while i < len(few) or j < len(many):
        if i < len(few) and (j >= len(many) or i * len(many) <= j * len(few)):
            out.append(few[i])
            i += 1
        else:
            out.append(many[j])
            j += 1
    return out


async def test_poison_and_oversized_messages_keep_half_the_normal_rate(
    own_broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    middle = START + (END - START) / 2

    def poisoned(round_: int, seed: int) -> list[Message]:
        """Normal traffic with the poison copies and five huge visits spread through it."""
        huge: list[Message] = [
            visit(names, f"huge{round_}-{i}", f"huge-visitor-{i}", middle, page="/" + "p" * size)
            for i, size in enumerate((300_000, 900_000, 1_200_000, 1_200_000))
        ]
        huge.append(
            visit(names, f"huge{round_}-ok", "huge-visitor-ok", middle, notes="n" * 900_000)
        )
        normal = traffic(names, NORMAL, seed, start=middle)
        return spread([poison(names)] * POISON_COPIES + huge, normal)

    worker = WorkerProcess(own_broker, topic_prefix, tmp_path / "state").start()
    try:
        await send_all(own_broker, closing_events(names, START))
        worker.wait_ready(timeout=60)
        await wait_caught_up(own_broker, worker.app_id, names.inputs)
        # Each the best of ROUNDS rounds of its own messages (support.best_rate).
        normal_rate = await best_rate(
            worker,
            [traffic(names, NORMAL, 2 * r + 1, end=middle) for r in range(ROUNDS)],
            own_broker,
        )
        poisoned_rate = await best_rate(
            worker, [poisoned(r + 1, 2 * r + 2) for r in range(ROUNDS)], own_broker
        )
        assert worker.process is not None and worker.process.poll() is None
        samples = worker.metrics()
    finally:
        worker.stop()
    print(f"messages per CPU second: normal={normal_rate:.0f} poisoned={poisoned_rate:.0f}")
    assert poisoned_rate >= 0.5 * normal_rate, (normal_rate, poisoned_rate)
    rejected = samples.value("funnel_events_rejected_total")
    assert samples.value("funnel_events_rejected_total", reason="schema_violation") >= ROUNDS * (
        POISON_COPIES + 4
    )
    letters = await dead_letters(own_broker, names)
    assert len(letters) == rejected
    omitted = [x for x in letters if "value_omitted_bytes" in x.headers]
    # The two 1.2 MB visits of each round.
    assert len(omitted) == 2 * ROUNDS and all(x.value is None for x in omitted)
