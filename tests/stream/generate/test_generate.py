"""The synthetic traffic, measured the way the worker will measure it (no Kafka here).

The big samples are drawn once per module: 20 days of default traffic (over 200k visits) and a
lead-rich variant for the rates deep in the funnel, where the default's few thousand leads
would leave the statistics too loose. Rates are checked against the profile with tolerances
of several standard errors; the seeds are fixed, so the outcome is deterministic.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pytest

from stream.config.topics import TopicNames
from stream.generate import OutMessage, TrafficGenerator, TrafficProfile, generate_messages

TOPICS = TopicNames.from_prefix()
START = 1_790_000_000.0  # 2026-09-21T14:13:20Z
DAY = 86_400.0
STAGES = {"lead", "mql", "sql", "opportunity", "customer", "contacted", "disqualified"}
FOLLOWUP_STAGES = {"contacted", "sql", "opportunity", "customer", "disqualified"}
FUNNEL = ("lead", "mql", "sql", "opportunity", "customer")
TYPE_OF_TOPIC = {TOPICS.visits: "visit", TOPICS.leads: "lead_created"}
TYPE_OF_TOPIC[TOPICS.transitions] = "stage_changed"
ID_FIELD = {"visit": "visitor_id", "lead_created": "lead_id", "stage_changed": "lead_id"}
REQUIRED = {
    "visit": ("visitor_id", "source"),
    "lead_created": ("lead_id", "source"),
    "stage_changed": ("lead_id", "to_stage"),
}
ALLOWED_FIELDS = {
    "visit": {"event_id", "type", "schema_version", "occurred_at", "visitor_id", "source"}
    | {"campaign", "page"},
    "lead_created": {"event_id", "type", "schema_version", "occurred_at", "lead_id", "visitor_id"}
    | {"source", "campaign", "team", "owner"},
    "stage_changed": {"event_id", "type", "schema_version", "occurred_at", "lead_id"}
    | {"from_stage", "to_stage", "team", "owner"},
}


def _parse_time(text: Any) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp with offset; ``None`` if naive or not one."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if parsed.tzinfo is None else parsed.timestamp()


def classify(message: OutMessage, wall_clock: float) -> tuple[str, dict[str, Any]]:
    """The reason events.md gives for rejecting ``message``, or ``"ok"``; and its fields."""
    try:
        event = json.loads(message.value)
    except ValueError:  # includes bytes that are not UTF-8
        return "invalid_json", {}
    if not isinstance(event, dict):
        return "invalid_json", {}
    kind = event.get("type")
    if kind in ID_FIELD and kind != TYPE_OF_TOPIC[message.topic]:
        return "wrong_topic_for_type", event
    if (
        kind not in ID_FIELD
        or not isinstance(event.get("event_id"), str)
        or not 1 <= len(event["event_id"]) <= 128
        or _parse_time(event.get("occurred_at")) is None
        or type(event.get("schema_version", 1)) is not int
        or any(not isinstance(event.get(name), str) for name in REQUIRED[kind])
    ):
        return "schema_violation", event
    if kind == "stage_changed" and event["to_stage"] not in STAGES:
        return "unknown_stage", event
    if message.key.decode() != event[ID_FIELD[kind]]:
        return "key_mismatch", event
    occurred = _parse_time(event["occurred_at"])
    if occurred is not None and occurred > wall_clock + 300:
        return "future_timestamp", event
    return "ok", event


@dataclass
class Measured:
    """What a recount of the topics finds."""

    messages: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    held_back: int = 0  # first copies delivered after their event time
    overtaken: int = 0  # first copies delivered after an event that occurred later
    firsts: int = 0
    visits: int = 0
    lead_created: dict[str, float] = field(default_factory=dict)
    entries: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> lead -> time
    touches: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)
    visitors: dict[str, float] = field(default_factory=dict)  # first visit time
    lead_visitors: dict[str, str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def rate(self, stage: str, previous: str) -> float:
        return len(self.entries[stage]) / len(self.entries[previous])

    def followup_mix(self) -> tuple[float, float, float, float]:
        buckets = Counter[int]()
        for lead_id, created in self.lead_created.items():
            times = [t for t, stage, _ in self.touches.get(lead_id, []) if stage in FOLLOWUP_STAGES]
            if not times:
                buckets[3] += 1
            else:
                latency = min(times) - created
                buckets[0 if latency < 3600 else 1 if latency < DAY else 2] += 1
        total = len(self.lead_created)
        return (buckets[0] / total, buckets[1] / total, buckets[2] / total, buckets[3] / total)


def measure(messages: list[OutMessage], wall_clock: float) -> Measured:
    m = Measured(entries={stage: {} for stage in FUNNEL})
    seen: set[str] = set()
    latest = float("-inf")
    for message in messages:
        m.messages += 1
        reason, event = classify(message, wall_clock)
        m.reasons[reason] += 1
        if reason != "ok":
            continue
        if event["event_id"] in seen:
            m.duplicates += 1
            continue
        seen.add(event["event_id"])
        m.events.append(event)
        occurred = _parse_time(event["occurred_at"])
        assert occurred is not None
        m.firsts += 1
        m.held_back += message.timestamp > occurred
        m.overtaken += occurred < latest
        latest = max(latest, occurred)
        if event["type"] == "visit":
            m.visits += 1
            m.visitors.setdefault(event["visitor_id"], occurred)
        elif event["type"] == "lead_created":
            m.lead_created[event["lead_id"]] = occurred
            m.entries["lead"][event["lead_id"]] = occurred
            m.lead_visitors[event["lead_id"]] = event["visitor_id"]
        else:
            lead_id, stage = event["lead_id"], event["to_stage"]
            m.touches.setdefault(lead_id, []).append((occurred, stage, event.get("from_stage", "")))
            if stage in m.entries:
                m.entries[stage].setdefault(lead_id, occurred)
    return m


def drained(profile: TrafficProfile, seed: int, visits_per_s: float, days: float) -> Measured:
    """``days`` of traffic, then every live lead played out to its end."""
    generator = TrafficGenerator(seed, profile, TOPICS, start=START, visits_per_s=visits_per_s)
    messages = generator.advance(START + days * DAY)
    messages.extend(generator.drain())
    assert generator.pending == 0
    return measure(messages, wall_clock=float("inf"))


@pytest.fixture(scope="module")
def default_sample() -> Measured:
    return drained(TrafficProfile(), seed=7, visits_per_s=250_000 / (20 * DAY), days=20)


@pytest.fixture(scope="module")
def lead_rich_sample() -> Measured:
    profile = replace(TrafficProfile(), visit_to_lead=0.5)
    return drained(profile, seed=11, visits_per_s=90_000 / (10 * DAY), days=10)


def _window(seed: int, **kwargs: Any) -> list[OutMessage]:
    return list(generate_messages(seed=seed, start=START, end=START + DAY, topics=TOPICS, **kwargs))


def test_same_seed_gives_identical_bytes_and_another_seed_does_not() -> None:
    first = _window(3, rate_per_s=0.5)
    assert first == _window(3, rate_per_s=0.5)
    other = _window(4, rate_per_s=0.5)
    assert [m.value for m in first[:100]] != [m.value for m in other[:100]]


def test_output_does_not_depend_on_how_time_is_advanced() -> None:
    def run(steps: int) -> list[OutMessage]:
        generator = TrafficGenerator(5, TrafficProfile(), TOPICS, start=START, visits_per_s=0.2)
        out: list[OutMessage] = []
        for i in range(1, steps + 1):
            out += generator.advance(START + 2 * DAY * i / steps)
        return out

    assert run(1) == run(977)


def test_messages_come_in_delivery_order_with_event_times_in_the_window() -> None:
    end = START + DAY
    messages = _window(8, rate_per_s=1.0)
    assert [m.timestamp for m in messages] == sorted(m.timestamp for m in messages)
    measured = measure(messages, wall_clock=end)
    assert measured.reasons["ok"] > 0.99 * len(messages)
    times = [_parse_time(e["occurred_at"]) for e in measured.events]
    assert all(t is not None and START <= t <= end for t in times)
    # the rate is messages of all kinds per second of event time
    assert len(messages) == pytest.approx(1.0 * DAY, rel=0.05)


def test_count_gives_exactly_that_many_messages() -> None:
    assert len(_window(9, count=5_000)) == 5_000
    assert len(_window(9, count=5_000, rate_per_s=50.0)) == 5_000
    with pytest.raises(ValueError, match="rate_per_s or count"):
        _window(9)


def test_every_valid_message_is_keyed_by_its_id_and_has_no_personal_data(
    default_sample: Measured,
) -> None:
    # key == visitor_id / lead_id is part of classify(); here the fields themselves
    for event in default_sample.events:
        assert set(event) <= ALLOWED_FIELDS[event["type"]], event
        assert event["occurred_at"].endswith("Z")
        assert not any("@" in str(value) for value in event.values())
        if event["type"] == "stage_changed":
            assert event.get("team", "sales-emea") in {"sales-emea", "sales-amer"}
            assert event.get("owner", "rep-1").startswith("rep-")
        if event["type"] == "lead_created":
            assert event["team"] in {"sales-emea", "sales-amer"}
            assert event["owner"].startswith("rep-")  # every lead is given to a rep
    sources = Counter(e["source"] for e in default_sample.events if e["type"] == "visit")
    assert set(sources) == {"organic", "paid_search", "social", "email", "referral", "direct"}


def test_visit_to_lead_and_lead_to_mql_rates(default_sample: Measured) -> None:
    assert default_sample.visits >= 200_000
    assert len(default_sample.lead_created) / default_sample.visits == pytest.approx(
        0.025, abs=0.003
    )
    assert default_sample.rate("mql", "lead") == pytest.approx(0.25, abs=0.02)


def test_deeper_conversion_rates(lead_rich_sample: Measured) -> None:
    assert len(lead_rich_sample.lead_created) > 40_000
    assert lead_rich_sample.rate("mql", "lead") == pytest.approx(0.25, abs=0.02)
    assert lead_rich_sample.rate("sql", "mql") == pytest.approx(0.35, abs=0.02)
    assert lead_rich_sample.rate("opportunity", "sql") == pytest.approx(0.50, abs=0.03)
    assert lead_rich_sample.rate("customer", "opportunity") == pytest.approx(0.25, abs=0.03)


@pytest.mark.parametrize("sample_name", ["default_sample", "lead_rich_sample"])
def test_first_follow_up_mix_matches_the_hbr_audit(
    sample_name: str, request: pytest.FixtureRequest
) -> None:
    sample: Measured = request.getfixturevalue(sample_name)
    within_1h, within_day, later, never = sample.followup_mix()
    assert within_1h == pytest.approx(0.37, abs=0.03)
    assert within_day == pytest.approx(0.16, abs=0.03)
    assert later == pytest.approx(0.24, abs=0.03)
    assert never == pytest.approx(0.23, abs=0.03)


def test_paths_are_consistent(lead_rich_sample: Measured) -> None:
    sample = lead_rich_sample
    first_touches = Counter[str]()
    reentries = 0
    for lead_id, touches in sample.touches.items():
        created = sample.lead_created[lead_id]
        touches.sort()
        previous = "lead"
        for occurred, stage, from_stage in touches:
            assert occurred >= created
            assert from_stage == previous
            previous = stage
        follow_ups = [stage for _, stage, _ in touches if stage in FOLLOWUP_STAGES]
        if follow_ups:
            first_touches[follow_ups[0]] += 1
        reentries += sum(stage == "contacted" for _, stage, _ in touches) > 1
        # a won lead is never disqualified
        assert "customer" not in {s for _, s, _ in touches} or "disqualified" not in {
            s for _, s, _ in touches
        }
    # most first touches are "contacted", some are directly the next stage
    assert first_touches["contacted"] > 0.7 * sum(first_touches.values())
    assert first_touches["sql"] > 0 and first_touches["disqualified"] > 0
    assert reentries > 0
    assert len(sample.entries["lead"]) == len(sample.lead_created)
    assert sum(1 for t in sample.touches.values() for _, s, _ in t if s == "disqualified") > 0


def test_leads_link_to_an_earlier_visit(default_sample: Measured) -> None:
    for lead_id, visitor_id in default_sample.lead_visitors.items():
        assert default_sample.visitors[visitor_id] <= default_sample.lead_created[lead_id]


def test_noise_rates(default_sample: Measured) -> None:
    sample = default_sample
    malformed = sample.messages - sample.reasons["ok"]
    assert sample.duplicates / sample.messages == pytest.approx(0.01, abs=0.0015)
    assert malformed / sample.messages == pytest.approx(0.001, abs=0.0003)
    assert sample.held_back / sample.firsts == pytest.approx(0.02, abs=0.002)
    assert 0.015 < sample.overtaken / sample.firsts <= sample.held_back / sample.firsts
    # the default mix covers every rejection reason but a timestamp in the future
    assert set(sample.reasons) == {
        "ok",
        "invalid_json",
        "schema_violation",
        "unknown_stage",
        "key_mismatch",
        "wrong_topic_for_type",
    }


def test_future_timestamps_only_when_asked() -> None:
    profile = replace(TrafficProfile(), malformed=0.05, malformed_mix=(("future_timestamp", 1.0),))
    messages = _window(12, rate_per_s=0.3, profile=profile)
    reasons = measure(messages, wall_clock=START + DAY).reasons
    assert set(reasons) == {"ok", "future_timestamp"}
    assert reasons["future_timestamp"] / len(messages) == pytest.approx(0.05, abs=0.01)


def test_memory_stays_bounded_in_a_long_run() -> None:
    profile = replace(TrafficProfile(), visit_to_lead=0.5)
    generator = TrafficGenerator(13, profile, TOPICS, start=START, visits_per_s=0.01)
    pending = []
    for day in (60, 90, 120):
        for _ in generator.iter_until(START + day * DAY):
            pass
        pending.append(generator.pending)
    # steady state: the live leads of the last weeks, not everything ever created
    leads_per_day = 0.01 * 0.5 * DAY
    assert max(pending) < 10 * leads_per_day
    assert max(pending) < 1.3 * min(pending)


@pytest.mark.parametrize(
    "change",
    [
        {"visit_to_lead": 1.5},
        {"followup_never": 0.5},  # the mix no longer sums to 1
        {"followup_within_1h": 0.07, "followup_never": 0.53, "lead_to_mql": 1.0, "mql_to_sql": 1.0},
        {"sources": ()},
        {"malformed_mix": (("bad_luck", 1.0),)},
        {"mql_delay_s": (10.0, 1.0)},
    ],
)
def test_invalid_profiles_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="TrafficProfile"):
        replace(TrafficProfile(), **change)
