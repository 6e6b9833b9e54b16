"""Hostile label values: 10,000 distinct sources and teams keep every metric within the bound.

A producer (by mistake or on purpose) sends a new ``source``, ``team`` and ``campaign`` with
every event. Each would be a new time series in every metric that carries the label; the bound
(``labels.max_values``) keeps the first N values seen and folds the rest into ``other``, which
``funnel_label_overflow_total{label}`` counts. Nothing is lost: the totals still equal the
offline recount.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from stream.config.topics import TopicNames
from tests.reliability.support import (
    START,
    Message,
    WorkerProcess,
    all_series,
    change,
    closing_events,
    counters,
    do_recount,
    expected_counters,
    expected_gauges,
    gauges,
    lead,
    produce,
    read_records,
    visit,
    wait_caught_up,
)

MAX_VALUES = 20
DISTINCT = 10_000
HOUR = 3600.0
# Labels whose values come from the configuration or the code, never from events.
FIXED_LABELS = {"le", "stage", "window", "period", "topic", "partition", "reason", "version"}


def hostile_traffic(names: TopicNames) -> list[Message]:
    """10,000 leads, each with its own source, team and campaign; a third of them followed up
    in time, a third late (a breach first), a third never; every eighth moved to yet another
    team; and 2,000 visits with their own sources. Delivered in event-time order, as a live
    feed is."""
    out: list[tuple[float, Message]] = []
    for i in range(DISTINCT):
        t = START + i * 20.0
        lid = f"lead-{i}"
        extra = {"source": f"src-{i}", "team": f"team-{i}", "campaign": f"c-{i}"}
        out.append((t, lead(names, f"l{i}", lid, t, **extra)))
        if i % 8 == 0:
            out.append((t + 60, change(names, f"t{i}", lid, "mql", t + 60, team=f"moved-{i}")))
        if i % 3 == 0:
            out.append((t + HOUR, change(names, f"f{i}", lid, "contacted", t + HOUR)))
        elif i % 3 == 1:
            out.append((t + 30 * HOUR, change(names, f"f{i}", lid, "sql", t + 30 * HOUR)))
    for i in range(2_000):
        t = START + i * 7.0
        out.append((t, visit(names, f"v{i}", f"visitor-{i}", t, source=f"vsrc-{i}")))
    return [m for _, m in sorted(out, key=lambda pair: pair[0])]


async def test_every_metric_stays_within_the_label_bound(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    config = tmp_path / "funnel.toml"
    config.write_text(f"[labels]\nmax_values = {MAX_VALUES}\n")
    await produce(broker, hostile_traffic(names) + closing_events(names))
    worker = WorkerProcess(broker, topic_prefix, tmp_path / "state")
    worker.extra_env["FUNNEL_CONFIG"] = str(config)
    try:
        worker.start().wait_ready(timeout=60)
        await wait_caught_up(broker, worker.app_id, names.inputs)
        text = worker.metrics_text()
        samples = worker.metrics()
        samples_again = worker.metrics()  # a second scrape must not count anything again
    finally:
        worker.stop()
    expected = do_recount(await read_records(broker, names))

    # Every label that takes values from events has at most max_values of them, plus "other".
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, labels, _ in all_series(samples):
        for label, value in labels.items():
            if label not in FIXED_LABELS:
                values[(name, label)].add(value)
    assert values, "no series with event labels"
    for (name, label), seen in values.items():
        assert len(seen) <= MAX_VALUES + 1, (name, label, len(seen))
    sources = values[("funnel_stage_entries_total", "source")]
    # Every slot is used (one is reserved for the core's own "unknown" source).
    assert "other" in sources and len(sources - {"other"}) >= MAX_VALUES - 1
    assert "other" in values[("funnel_followups_total", "team")]
    assert "other" in values[("funnel_leads_overdue", "team")]
    # Campaigns and identifiers are never label values.
    for needle in ('"c-1"', "lead-1", "visitor-1", "campaign="):
        assert needle not in text

    # Nothing is lost by bounding: the totals are the recount's.
    assert _fold_teams(counters(names, samples)) == _fold_teams(expected_counters(expected))
    assert _by_total(gauges(samples)) == _by_total(expected_gauges(expected))
    breaches = sum(v for _, v in samples.series("funnel_followup_sla_breaches_total"))
    assert breaches == sum(expected.breaches.values())

    # The overflow counter counts each value folded into "other", once, when it is counted.
    def other(name: str, label: str) -> float:
        return sum(v for lb, v in samples.series(name) if lb.get(label) == "other")

    overflow = {lb["label"]: v for lb, v in samples.series("funnel_label_overflow_total")}
    assert overflow["source"] == other("funnel_stage_entries_total", "source") > 0
    team_effects = (
        other("funnel_followups_total", "team")
        + other("funnel_followup_sla_breaches_total", "team")
        + other("funnel_followup_sla_warnings_total", "team")
    )
    assert overflow["team"] == team_effects > 0
    assert overflow["campaign"] == 0  # not a label today
    again = {lb["label"]: v for lb, v in samples_again.series("funnel_label_overflow_total")}
    assert again == overflow


def _fold_teams(counts: dict[str, float]) -> dict[str, float]:
    """Counters with every team folded into one, for the same reason as ``_by_total``."""
    out: dict[str, float] = defaultdict(float)
    for key, v in counts.items():
        parts = key.split("|")
        if parts[0] in ("funnel_followups_total", "funnel_followup_clock_skew_total"):
            parts[1] = "*"
        out["|".join(parts)] += v
    return dict(out)


def _by_total(expected: dict[tuple[str, ...], float]) -> dict[tuple[str, ...], float]:
    """Team gauges summed as the worker folds teams beyond the bound into "other".

    Which teams keep their name depends on the order they were first seen, so compare the
    totals per gauge, and the window counts as they are.
    """
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for key, v in expected.items():
        out[key if key[0] == "window" else (key[0], "*")] += v
    return dict(out)
