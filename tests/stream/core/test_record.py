"""``record_lead_event`` (what a report applies) ends in the states and clocks of
``Funnel.apply`` (what a worker applies), on the generator's traffic with its duplicates and
late deliveries."""

from __future__ import annotations

import pytest

from schemas import LeadCreated, StageChanged, classify
from stream.config.topics import TopicNames
from stream.core.funnel import ClockMode, Funnel
from stream.core.leads import LeadState
from stream.core.leadstatus import lead_status
from stream.core.record import record_lead_event
from stream.core.rules import FunnelRules
from stream.generate import generate_messages
from stream.kafka.partitioner import home_partition

START = 1_795_000_000.0
DAY = 86400.0
NAMES = TopicNames.from_prefix("record.")


def _lead_events() -> list[tuple[int, LeadCreated | StageChanged]]:
    """Lead events of 20 days, per topic in partition order, on their home partitions."""
    rules = FunnelRules()
    stages = frozenset(rules.all_stages)
    by_topic: dict[str, list[tuple[int, LeadCreated | StageChanged]]] = {}
    messages = generate_messages(
        seed=11, start=START, end=START + 20 * DAY, count=60_000, topics=NAMES
    )
    for m in messages:
        if m.topic == NAMES.visits:
            continue
        event = classify(NAMES.kinds[m.topic], m.key, m.value, stages=stages, now=2e9)
        if isinstance(event, LeadCreated | StageChanged):
            by_topic.setdefault(m.topic, []).append((home_partition(m.key, 4), event))
    return [
        item
        for topic in (NAMES.leads, NAMES.transitions)
        for item in sorted(by_topic[topic], key=lambda item: item[0])  # stable: offset order
    ]


@pytest.mark.parametrize("mode", ["event", "wall"])
def test_recorded_states_and_clocks_equal_the_workers(mode: ClockMode) -> None:
    rules = FunnelRules(dedupe_horizon=2 * DAY)  # ids are forgotten during the 20 days
    events = _lead_events()
    now = START + 30 * DAY
    worker = Funnel(rules, {}, {}, mode, now=lambda: now)
    report = Funnel(rules, {}, {}, mode, now=lambda: now)
    answers = []
    for partition, event in events:
        t = event.occurred_at.timestamp()
        answers.append(
            (worker.apply(partition, event, t), record_lead_event(report, partition, event, t))
        )
        worker.effects.clear()
    assert len(events) > 1500
    assert sum(w == "duplicate" for w, _ in answers) > 5  # the generator's re-sent copies
    assert [w for w, _ in answers] == [r for _, r in answers]
    assert dict(report.leads.items()) == dict(worker.leads.items())
    assert report.forgotten_ids == worker.forgotten_ids
    for key, view in worker.views.items():
        mine = report.views[key]
        assert (mine.clock, mine.watermark, mine.event_clock) == (
            view.clock,
            view.watermark,
            view.event_clock,
        )
    # And so every lead's status at the end, which is what the report reads.
    for _, raw in worker.leads.items():
        state = LeadState.decode(raw)
        clock = worker.view("leads", state.partition).clock
        assert lead_status(state, rules, clock) == lead_status(
            state, rules, report.view("leads", state.partition).clock
        )
