"""Event builders and one hand-built scenario with every funnel metric written down by hand.

The builders give the JSON bytes of events.md (RFC 3339 ``Z`` times) and the parsed models,
for the core's unit and property tests. ``hand_built_scenario`` is a fixed list of input
messages, good and bad, with the value every funnel-section metric of metrics.md must show
once they are all processed in ``event`` clock mode with the default rules. The expectations
are worked out by hand (see the comments), never computed by the core.

Every message names its partition, 0. In ``event`` mode each lead partition has its own
clock, the lower of its two topics' watermarks, so the story told below is that of one
partition; but the expected figures hold as well for any spread of the keys over
partitions that keeps a lead's messages together (as Kafka's key partitioner does), and for
any way a consumer interleaves the topic partitions (Kafka keeps only the order within
one); tests/stream/core/test_properties.py checks both:

- no partition clock passes day 1 09:52 (leads go up to 09:55, stage changes to 09:52);
- every stage change lies within the orphan hold (1 h) of that, so no held stage change can
  be released as an orphan before its lead arrives;
- every follow-up that meets the SLA belongs to a lead created less than 24 h before it,
  so the clock can never pass its deadline before the follow-up arrives;
- the two leads whose deadlines pass breach in every order and partition, and only once:
  one's follow-up is late, the other has its own stage change and lead_created after its
  deadline, which move its partition's clock past it;
- warnings (4 h and 1 h before the deadline) are reached the same way: by a lead's own
  late follow-up or its own later events, and no partition clock reaches a warning that is
  not counted here (I's 1 h warning is at day 1 11:00).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas import LeadCreated, StageChanged, TopicKind, Visit

HOUR = 3600.0
DAY = 86400.0


def at(text: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp such as ``2026-11-20T09:00:00Z``."""
    return datetime.fromisoformat(text).timestamp()


def rfc3339(t: float) -> str:
    """``t`` (epoch seconds) as an RFC 3339 UTC timestamp with a ``Z``."""
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def visit_payload(
    event_id: str, visitor_id: str, t: float, source: str = "organic"
) -> dict[str, Any]:
    """A ``visit`` event as a JSON object."""
    return {
        "event_id": event_id,
        "type": "visit",
        "occurred_at": rfc3339(t),
        "visitor_id": visitor_id,
        "source": source,
        "page": "/pricing",
    }


def lead_payload(
    event_id: str,
    lead_id: str,
    t: float,
    source: str = "organic",
    team: str | None = None,
    visitor_id: str | None = None,
) -> dict[str, Any]:
    """A ``lead_created`` event as a JSON object (``team`` left out: the default team)."""
    payload: dict[str, Any] = {
        "event_id": event_id,
        "type": "lead_created",
        "occurred_at": rfc3339(t),
        "lead_id": lead_id,
        "source": source,
    }
    if team is not None:
        payload["team"] = team
    if visitor_id is not None:
        payload["visitor_id"] = visitor_id
    return payload


def stage_payload(
    event_id: str, lead_id: str, to_stage: str, t: float, team: str | None = None
) -> dict[str, Any]:
    """A ``stage_changed`` event as a JSON object (``team`` left out: no override)."""
    payload: dict[str, Any] = {
        "event_id": event_id,
        "type": "stage_changed",
        "occurred_at": rfc3339(t),
        "lead_id": lead_id,
        "to_stage": to_stage,
    }
    if team is not None:
        payload["team"] = team
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    """JSON bytes of an event, as a producer would send them."""
    return json.dumps(payload, separators=(",", ":")).encode()


def visit(event_id: str, visitor_id: str, t: float, source: str = "organic") -> Visit:
    """A parsed ``visit`` event."""
    return Visit.model_validate_json(encode(visit_payload(event_id, visitor_id, t, source)))


def lead(
    event_id: str,
    lead_id: str,
    t: float,
    source: str = "organic",
    team: str | None = None,
) -> LeadCreated:
    """A parsed ``lead_created`` event."""
    return LeadCreated.model_validate_json(encode(lead_payload(event_id, lead_id, t, source, team)))


def stage(
    event_id: str, lead_id: str, to_stage: str, t: float, team: str | None = None
) -> StageChanged:
    """A parsed ``stage_changed`` event."""
    return StageChanged.model_validate_json(
        encode(stage_payload(event_id, lead_id, to_stage, t, team))
    )


def partition_of(key: bytes | None, partitions: int = 4) -> int:
    """A stable stand-in for Kafka's partitioner, so tests spread keys over a few partitions."""
    return 0 if key is None else zlib.crc32(key) % partitions


@dataclass(frozen=True, slots=True)
class Message:
    """One input message: the topic it is consumed from, its key and value bytes, its partition."""

    kind: TopicKind
    key: bytes | None
    value: bytes
    partition: int = 0


@dataclass(frozen=True, slots=True)
class Scenario:
    """Input messages and the expected value of every funnel-section metric after them.

    Mappings hold the non-zero series only; every other series of the metric is 0 (for the
    oldest open lead: absent). Teams are ``north``, ``south`` (and ``default``, unused).
    """

    messages: tuple[Message, ...]
    watermark: float
    # funnel_stage_entries_total{stage, source}
    stage_entries: dict[tuple[str, str], int]
    # funnel_stage_reentries_total{stage}
    stage_reentries: dict[str, int]
    # funnel_window_stage_entries{stage, window, period}
    window_entries: dict[tuple[str, str, str], int]
    # funnel_followup_latency_seconds{team}: every observation (wall seconds), sorted
    followup_latencies: dict[str, list[float]]
    # funnel_followups_total{team, within_sla}
    followups: dict[tuple[str, str], int]
    # funnel_followup_sla_breaches_total{team}
    breaches: dict[str, int]
    # funnel_followup_sla_warnings_total{team, before}
    warnings: dict[tuple[str, str], int]
    # funnel_leads_at_risk{team, before}
    at_risk: dict[tuple[str, str], int]
    # funnel_leads_in_stage{stage} (no funnel.stuck_after by default: none stuck)
    in_stage: dict[str, int]
    # funnel_stage_time_seconds{from_stage, to_stage}: every observation (seconds), sorted
    stage_times: dict[tuple[str, str], list[float]]
    # funnel_leads_awaiting_followup{team}
    awaiting: dict[str, int]
    # funnel_leads_overdue{team}
    overdue: dict[str, int]
    # funnel_oldest_awaiting_followup_timestamp_seconds{team}
    oldest_open: dict[str, float]
    # funnel_followup_clock_skew_total{team}
    clock_skew: dict[str, int]
    # funnel_events_{consumed,applied,duplicate}_total{topic}, by topic kind
    consumed: dict[TopicKind, int]
    applied: dict[TopicKind, int]
    duplicate: dict[TopicKind, int]
    # funnel_events_rejected_total{topic, reason}, by topic kind
    rejected: dict[tuple[TopicKind, str], int]


def hand_built_scenario() -> Scenario:
    """Two days of a small funnel, good and bad messages, with every metric worked out by hand.

    Day 0 is Friday 2026-11-20, day 1 Saturday 2026-11-21 (UTC; the default rules have no
    business calendar, so the weekend does not matter). The last event is day 1, 09:57.

    Leads (team, source): what happens to them.

    - H (south, paid_search), day 0 08:00: never followed up. Its deadline (day 1 08:00)
      passes when the first stage change (C's mql, 09:10) lifts the partition clock to the
      leads' watermark, E's 08:30: one breach; still open at the end, overdue. It becomes
      an mql at 09:12, and a second lead_created (a re-submitted form, no team) comes at
      09:35: a re-entry into lead, which leaves H with south. These two also move the
      clock of whatever partition H is in past its deadline by themselves.
    - B (north, organic), day 0 09:00: its deadline (day 1 09:00) passes when C's second
      mql (09:30) and G's lead (09:30) lift the clock to 09:30; it is contacted late at
      09:40 (24 h 40 min = 88 800 s, not within the SLA), which is not a second breach.
    - C (north, email), day 1 08:00, sent twice (same event_id: one duplicate): mql 09:10
      with a team override to south, sql 09:20 (the follow-up: 80 min = 4 800 s, south),
      mql again 09:30 (a re-entry).
    - E (south, organic), day 1 08:30: skips to sql at 09:15 (45 min = 2 700 s); no mql.
    - G (north, organic), day 1 09:30: no follow-up yet, open, not overdue.
    - D (north, referral), day 1 09:45: contacted at 09:50 (300 s); the stage change is
      sent before the lead.
    - F (south, social), day 1 09:55: contacted stamped 09:52, before the lead: clock skew,
      latency 0, within the SLA.
    - I (north, organic), day 0 12:00, sent last: deadline day 1 12:00, so at risk for 4 h
      from 08:00 and for 1 h from 11:00. Its mql at day 1 09:00 and a re-submitted form at
      09:00 (a re-entry) lift its own partition's clock past 08:00: one 4 h warning; still
      open and at risk (4 h) at the end.

    Warnings (4 h and 1 h before the deadline, each once per lead, with the team of the
    lead at that instant): H (south) at day 1 04:00 and 07:00, passed when the clock reaches
    08:30; B (north) at 05:00 and 08:00, passed by then too (and before its late follow-up
    at 09:40 in any order); I (north) at 08:00 only.

    Visits: v1 (vis-1, organic) day 0 07:30, v2 (vis-2, paid_search) day 0 12:00, v3
    (vis-1, organic) day 1 09:05, sent twice (one duplicate), v4 (vis-3, social) day 1 09:57.
    """
    m: list[Message] = []

    def send(kind: TopicKind, key: str, payload: dict[str, Any]) -> None:
        m.append(Message(kind, key.encode(), encode(payload)))

    def day0(hhmm: str) -> float:
        return at(f"2026-11-20T{hhmm}:00Z")

    def day1(hhmm: str) -> float:
        return at(f"2026-11-21T{hhmm}:00Z")

    send("visits", "vis-1", visit_payload("v1", "vis-1", day0("07:30"), "organic"))
    send("leads", "lead-H", lead_payload("l-H", "lead-H", day0("08:00"), "paid_search", "south"))
    send("leads", "lead-B", lead_payload("l-B", "lead-B", day0("09:00"), "organic", "north"))
    send("visits", "vis-2", visit_payload("v2", "vis-2", day0("12:00"), "paid_search"))
    c_created = lead_payload("l-C", "lead-C", day1("08:00"), "email", "north")
    send("leads", "lead-C", c_created)
    send("leads", "lead-C", c_created)  # a producer retry: duplicate
    send(
        "leads", "lead-E", lead_payload("l-E", "lead-E", day1("08:30"), "organic", "south", "vis-1")
    )
    v3 = visit_payload("v3", "vis-1", day1("09:05"), "organic")
    send("visits", "vis-1", v3)
    send("visits", "vis-1", v3)  # duplicate
    # The first stage change: the clock moves to min(08:30, 09:10), past H's deadline.
    send("transitions", "lead-C", stage_payload("s-C1", "lead-C", "mql", day1("09:10"), "south"))
    send("transitions", "lead-H", stage_payload("s-H1", "lead-H", "mql", day1("09:12")))
    send("transitions", "lead-E", stage_payload("s-E1", "lead-E", "sql", day1("09:15")))
    send("transitions", "lead-C", stage_payload("s-C2", "lead-C", "sql", day1("09:20")))
    send("transitions", "lead-C", stage_payload("s-C3", "lead-C", "mql", day1("09:30")))
    # Both watermarks at 09:30 now: past B's deadline.
    send("leads", "lead-G", lead_payload("l-G", "lead-G", day1("09:30"), "organic", "north"))
    send("leads", "lead-H", lead_payload("l-H2", "lead-H", day1("09:35"), "organic"))
    # B's late follow-up, after its breach was declared.
    send("transitions", "lead-B", stage_payload("s-B1", "lead-B", "contacted", day1("09:40")))
    # D's follow-up is sent before D itself.
    send("transitions", "lead-D", stage_payload("s-D1", "lead-D", "contacted", day1("09:50")))
    send("leads", "lead-D", lead_payload("l-D", "lead-D", day1("09:45"), "referral", "north"))
    send("leads", "lead-F", lead_payload("l-F", "lead-F", day1("09:55"), "social", "south"))
    send("transitions", "lead-F", stage_payload("s-F1", "lead-F", "contacted", day1("09:52")))
    send("visits", "vis-3", visit_payload("v4", "vis-3", day1("09:57"), "social"))
    send("leads", "lead-I", lead_payload("l-I", "lead-I", day0("12:00"), "organic", "north"))
    send("leads", "lead-I", lead_payload("l-I2", "lead-I", day1("09:00"), "organic"))
    send("transitions", "lead-I", stage_payload("s-I1", "lead-I", "mql", day1("09:00")))

    # One malformed message per rejection reason (future_timestamp aside).
    m.append(Message("visits", b"vis-9", b'{"event_id": "x1", "type": "visit",'))  # invalid_json
    no_source = visit_payload("x2", "vis-9", day1("09:00"))
    del no_source["source"]
    send("visits", "vis-9", no_source)  # schema_violation
    send("leads", "vis-9", visit_payload("x3", "vis-9", day1("09:00")))  # wrong_topic_for_type
    send(
        "transitions", "lead-C", stage_payload("x4", "lead-C", "won", day1("09:00"))
    )  # unknown_stage
    send("leads", "lead-X", lead_payload("x5", "lead-Y", day1("09:00")))  # key_mismatch

    return Scenario(
        messages=tuple(m),
        watermark=day1("09:57"),  # v4
        stage_entries={
            ("visit", "organic"): 2,  # v1, v3 (its duplicate is not an entry)
            ("visit", "paid_search"): 1,  # v2
            ("visit", "social"): 1,  # v4
            ("lead", "paid_search"): 1,  # H
            ("lead", "organic"): 4,  # B, E, G, I
            ("lead", "email"): 1,  # C (once, despite the duplicate)
            ("lead", "referral"): 1,  # D
            ("lead", "social"): 1,  # F
            ("mql", "email"): 1,  # C's first mql; the second is a re-entry
            ("mql", "paid_search"): 1,  # H
            ("mql", "organic"): 1,  # I
            ("sql", "email"): 1,  # C
            ("sql", "organic"): 1,  # E, which skipped mql
            ("contacted", "organic"): 1,  # B
            ("contacted", "referral"): 1,  # D
            ("contacted", "social"): 1,  # F
        },
        stage_reentries={"mql": 1, "lead": 2},  # C back into mql, H and I created again
        # The watermark is day 1 09:57: 1h current = [09:00, 10:00), previous = [08:00, 09:00);
        # 1d current = day 1, previous = day 0. Each lead counts once per stage, at its
        # first entry.
        window_entries={
            ("visit", "1h", "current"): 2,  # v3, v4
            ("visit", "1d", "current"): 2,  # v3, v4
            ("visit", "1d", "previous"): 2,  # v1, v2
            ("lead", "1h", "current"): 3,  # G 09:30, D 09:45, F 09:55
            ("lead", "1h", "previous"): 2,  # C 08:00, E 08:30
            ("lead", "1d", "current"): 5,  # C, E, G, D, F
            ("lead", "1d", "previous"): 3,  # H (its second entry is no entry), B, I
            ("mql", "1h", "current"): 3,  # I 09:00, C 09:10, H 09:12
            ("mql", "1d", "current"): 3,
            ("sql", "1h", "current"): 2,  # E 09:15, C 09:20
            ("sql", "1d", "current"): 2,
            ("contacted", "1h", "current"): 3,  # B 09:40, D 09:50, F 09:52
            ("contacted", "1d", "current"): 3,
        },
        followup_latencies={
            "north": [300.0, 88_800.0],  # D, B
            "south": [0.0, 2_700.0, 4_800.0],  # F (skew), E, C (team south since 09:10)
        },
        followups={
            ("north", "true"): 1,  # D
            ("north", "false"): 1,  # B
            ("south", "true"): 3,  # F, E, C
        },
        breaches={"north": 1, "south": 1},  # B, H
        warnings={
            ("north", "4h"): 2,  # B, I
            ("north", "1h"): 1,  # B
            ("south", "4h"): 1,  # H
            ("south", "1h"): 1,  # H
        },
        at_risk={("north", "4h"): 1},  # I (H is overdue, no longer at risk)
        # The furthest funnel stage each lead entered (contacted is outside the order).
        in_stage={"lead": 4, "mql": 2, "sql": 2},  # B, G, D, F; H, I; C, E
        # A step is observed once its partition's clock passed its later entry by the orphan
        # hold (1 h); no clock passes 09:52, and every step ends after 08:52: none yet.
        stage_times={},
        awaiting={"north": 2, "south": 1},  # G and I, H
        overdue={"south": 1},  # H
        oldest_open={"north": day0("12:00"), "south": day0("08:00")},  # I, H
        clock_skew={"south": 1},  # F
        consumed={"visits": 7, "leads": 13, "transitions": 10},
        applied={"visits": 4, "leads": 10, "transitions": 9},
        duplicate={"visits": 1, "leads": 1},
        rejected={
            ("visits", "invalid_json"): 1,
            ("visits", "schema_violation"): 1,
            ("leads", "wrong_topic_for_type"): 1,
            ("leads", "key_mismatch"): 1,
            ("transitions", "unknown_stage"): 1,
        },
    )
