"""``funnel report``: what counts in a period, follow-up figures, equality with the worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from schemas import TopicKind
from stream.config.funnel_rules import rules_from_settings
from stream.config.loading import load_settings
from stream.config.settings import Settings
from stream.config.topics import TopicNames
from stream.report import build_report, collect, parse_period
from stream.report.recount import InputMessage
from stream.report.render_md import render_markdown
from tests.harness import WorkerProcess, free_port, produce, wait_caught_up
from tests.stream.runtime.test_exactness import closing_events, traffic


def iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def message(kind: TopicKind, key: str, **fields: Any) -> InputMessage:
    return InputMessage(kind, 0, key.encode(), json.dumps(fields).encode())


def visit(vid: str, at: str, source: str = "organic") -> InputMessage:
    return message(
        "visits",
        vid,
        event_id=f"v-{vid}",
        type="visit",
        visitor_id=vid,
        occurred_at=at,
        source=source,
    )


def lead(lid: str, at: str, source: str = "organic", team: str = "sales-a") -> InputMessage:
    return message(
        "leads",
        lid,
        event_id=f"l-{lid}",
        type="lead_created",
        lead_id=lid,
        occurred_at=at,
        source=source,
        team=team,
    )


def change(lid: str, stage: str, at: str) -> InputMessage:
    return message(
        "transitions",
        lid,
        event_id=f"c-{lid}-{stage}",
        type="stage_changed",
        lead_id=lid,
        to_stage=stage,
        occurred_at=at,
    )


def settings_from(tmp_path: Path, text: str = "") -> Settings:
    path = tmp_path / "funnel.toml"
    path.write_text(text)
    return load_settings(path, environ={})


def report_of(
    settings: Settings, messages: list[InputMessage], start: str, end: str, now: float
) -> Any:
    facts = collect(messages, rules_from_settings(settings), clock_mode="wall", now=now)
    period = parse_period(start, end, settings.funnel.time_zone)
    return build_report(facts, settings, period, generated_at=now)


def test_a_period_is_whole_days_of_the_business_time_zone(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, '[funnel]\ntime_zone = "Europe/Madrid"\n')
    messages = [
        visit("a", "2026-11-17T22:30:00Z"),  # 23:30 on the 17th in Madrid: before
        visit("b", "2026-11-17T23:30:00Z", "paid"),  # 00:30 on the 18th: in
        visit("c", "2026-11-18T22:59:59Z"),  # 23:59:59 on the 18th: in
        visit("d", "2026-11-18T23:00:00Z"),  # midnight of the 19th: after
        lead("L1", "2026-11-18T10:00:00Z", "paid"),
        change("L1", "mql", "2026-11-18T11:00:00Z"),
        change("L1", "contacted", "2026-11-18T10:30:00Z"),
    ]
    report = report_of(settings, messages, "2026-11-18", "2026-11-19", iso("2026-11-27T00:00Z"))
    assert report.entries["visit"] == 2
    assert report.entries["lead"] == 1
    assert report.entries["mql"] == 1
    assert report.entries["contacted"] == 1
    rows = {row.stage: row for row in report.funnel}
    assert rows["visit"].conversion == 0.5
    assert rows["lead"].conversion == 1.0
    assert dict(rows["visit"].by_source) == {"paid": 1, "organic": 1}
    assert report.total.followups == 1
    assert report.total.wall.p50 == 1800


def test_follow_up_percentiles_sla_breaches_and_open_leads(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, '[sla]\nfollowup_within = "8h"\n')
    now = iso("2026-11-20T12:00:00Z")
    messages: list[InputMessage] = []
    # Team a: ten leads followed up after 1 h, 2 h, ... 10 h.
    for i in range(1, 11):
        messages.append(lead(f"a{i}", f"2026-11-18T00:{i:02d}:00Z", team="sales-a"))
        messages.append(change(f"a{i}", "contacted", f"2026-11-18T{i:02d}:{i:02d}:00Z"))
    # Team b: one answered after 30 h (late), one never (overdue), one created an hour ago.
    messages += [
        lead("b1", "2026-11-18T06:00:00Z", team="sales-b"),
        change("b1", "sql", "2026-11-19T12:00:00Z"),
        lead("b2", "2026-11-18T08:00:00Z", team="sales-b"),
        lead("b3", "2026-11-20T11:00:00Z", team="sales-b"),
        lead("b4", "2026-11-17T11:00:00Z", team="sales-b"),  # before the period
    ]
    report = report_of(settings, messages, "2026-11-18", "2026-11-21", now)
    teams = {row.team: row for row in report.teams}
    a, b = teams["sales-a"], teams["sales-b"]
    assert (a.leads, a.followups, a.within_sla) == (10, 10, 8)
    assert a.share_within_sla == 0.8
    # Nearest rank: the 5th, 9th and 10th of the ten latencies.
    assert (a.wall.p50, a.wall.p90, a.wall.p95) == (5 * 3600, 9 * 3600, 10 * 3600)
    assert (a.breaches, a.open, a.overdue) == (2, 0, 0)
    assert (b.leads, b.followups, b.within_sla) == (3, 1, 0)
    assert b.wall.p50 == 30 * 3600
    assert (b.breaches, b.open, b.overdue) == (2, 2, 1)
    assert report.total.followups == 11
    # The distribution the HTML chart draws: 11 follow-ups, by the metric's buckets.
    buckets = dict(report.latency_buckets)
    assert sum(buckets.values()) == 11
    assert buckets[3600] == 1 and buckets[7200] == 1 and buckets[14400] == 2


def test_deliveries_against_a_pro_rata_commitment(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, "[sla.marketing]\nmql_per_month = 300\n")
    messages = [
        lead("m1", "2026-11-20T09:00:00Z"),
        change("m1", "mql", "2026-11-20T10:00:00Z"),
        lead("m2", "2026-12-01T09:00:00Z"),
        change("m2", "mql", "2026-12-03T10:00:00Z"),
        change("m2", "sql", "2026-12-04T10:00:00Z"),
    ]
    report = report_of(settings, messages, "2026-11-16", "2026-12-16", iso("2026-12-20T00:00Z"))
    mql, sql = report.commitments
    # November: the 16th to the 30th, 15 of 30 days; December: 15 of 31 days.
    assert [(m, d) for m, d, _ in mql.months] == [("2026-11", 1), ("2026-12", 1)]
    assert mql.months[0][2] == pytest.approx(150)
    assert mql.months[1][2] == pytest.approx(300 * 15 / 31)
    assert (sql.per_month, sql.delivered) == (0, 1)


def test_markdown_opens_with_the_definitions_then_both_audiences(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path, '[funnel.definitions]\nmql = "Asked for a demo, 10+ employees"\n'
    )
    messages = [lead("x", "2026-11-18T10:00:00Z"), change("x", "mql", "2026-11-18T11:00:00Z")]
    text = render_markdown(
        report_of(settings, messages, "2026-11-18", "2026-11-19", iso("2026-11-19T00:00Z"))
    )
    definition = text.index("Asked for a demo, 10+ employees")
    assert definition < text.index("## Marketing → Sales") < text.index("## Sales → Marketing")


def funnel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    result = funnel("report", "--from", "2026-11-20", "--to", "2026-11-01", env={})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("funnel report: --to")


def test_an_unreachable_broker_is_one_line() -> None:
    port = free_port()
    result = funnel(
        "report",
        "--from",
        "2026-11-01",
        "--to",
        "2026-12-01",
        env={"FUNNEL_BROKER": f"127.0.0.1:{port}", "FUNNEL_KAFKA_CONNECT_TIMEOUT": "1s"},
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("funnel ")]
    assert len(errors) == 1
    assert errors[0].startswith(f"funnel report: cannot reach Kafka at 127.0.0.1:{port}")


def report_json(env: dict[str, str], start: str, end: str) -> dict[str, Any]:
    result = funnel("report", "--from", start, "--to", end, "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


async def test_report_equals_the_workers_exact_numbers(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    await produce(broker, traffic(names, 6_000, seed=23) + closing_events(names))
    worker = WorkerProcess(broker, topic_prefix, tmp_path / "state", clock="event").start()
    try:
        worker.wait_ready(timeout=60)
        await wait_caught_up(broker, worker.app_id, names.inputs)
        samples = worker.metrics()
    finally:
        worker.stop()
    env = {"FUNNEL_BROKER": broker, "FUNNEL_TOPIC_PREFIX": topic_prefix, "FUNNEL_CLOCK": "event"}
    # The generated data runs from 2026-11-18 10:13 to 2026-11-21 11:13 UTC.
    whole = report_json(env, "2026-11-01", "2026-12-01")
    stages = load_settings(environ={}).funnel.all_stages
    assert whole["entries"] == {
        stage: samples.value("funnel_stage_entries_total", stage=stage) for stage in stages
    }
    assert whole["entries"]["sql"] > 0 and whole["entries"]["visit"] > 1000
    teams = {labels["team"] for labels, _ in samples.series("funnel_followups_total")}
    worker_followups = {
        team: samples.value("funnel_followup_latency_seconds_count", team=team) for team in teams
    }
    report_followups = {team: row["followups"] for team, row in whole["followups"].items()}
    assert report_followups == {team: n for team, n in worker_followups.items() if n}
    for team, row in whole["followups"].items():
        met = samples.value("funnel_followups_total", team=team, within_sla="true")
        assert row["within_sla"] == met
    breaches = {
        team: row["breaches"] for team, row in whole["followups"].items() if row["breaches"]
    }
    worker_breaches = {
        labels["team"]: v for labels, v in samples.series("funnel_followup_sla_breaches_total") if v
    }
    assert breaches == worker_breaches
    open_leads = {team: row["open"] for team, row in whole["followups"].items() if row["open"]}
    assert open_leads == {
        labels["team"]: v for labels, v in samples.series("funnel_leads_awaiting_followup") if v
    }

    # The window gauges: the day holding the watermark (the 21st) and the day before.
    marks = samples.series("funnel_event_time_watermark_timestamp_seconds")
    assert time.strftime("%Y-%m-%d", time.gmtime(max(v for _, v in marks))) == "2026-11-21"
    for day, after, period in (
        ("2026-11-21", "2026-11-22", "current"),
        ("2026-11-20", "2026-11-21", "previous"),
    ):
        report = report_json(env, day, after)
        gauges = {
            stage: samples.value(
                "funnel_window_stage_entries", stage=stage, window="1d", period=period
            )
            for stage in stages
        }
        assert report["entries"] == gauges
