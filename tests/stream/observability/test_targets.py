"""Targets on ``/metrics``: what a dashboard reads to draw its target lines."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from stream.config.loading import load_settings
from stream.config.settings import Settings
from stream.observability.scrape import Samples, parse_metrics
from stream.observability.targets import register_targets

FULL = """
[labels]
team = ["sales-emea", "sales-amer"]

[sla]
followup_within = "8h"

[sla.marketing]
mql_per_month = 500
sql_per_month = 0

[north_star]
revenue_goal = 1000000
period = "year"
average_deal_size = 20000

[north_star.conversion]
visit = 0.025
lead = 0.25
mql = 0.35
sql = 0.5
opportunity = 0.25
"""


def scrape(settings: Settings) -> Samples:
    registry = CollectorRegistry()
    register_targets(registry, settings)
    return parse_metrics(generate_latest(registry).decode())


def settings_from(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "funnel.toml"
    path.write_text(text)
    return load_settings(path, environ={})


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {labels[label]: value for labels, value in samples.series(name)}


def test_targets_follow_the_plan_and_the_commitments(tmp_path: Path) -> None:
    samples = scrape(settings_from(tmp_path, FULL))
    # The worked example per month (tests/stream/planning/test_plan.py works it out by hand).
    assert by_label(samples, "funnel_target_stage_entries", "stage") == {
        "visit": 15240,
        "lead": 381,
        "mql": 96,
        "sql": 34,
        "opportunity": 17,
        "customer": 5,
    }
    assert {labels["period"] for labels, _ in samples.series("funnel_target_stage_entries")} == {
        "month"
    }
    # sql_per_month = 0 means no commitment: no series, rather than a target of 0.
    assert by_label(samples, "funnel_sla_commitment_stage_entries", "stage") == {"mql": 500}
    assert samples.value("funnel_sla_commitment_stage_entries", stage="mql", period="month") == 500
    assert by_label(samples, "funnel_sla_followup_seconds", "team") == {
        "sales-emea": 8 * 3600,
        "sales-amer": 8 * 3600,
        "default": 8 * 3600,
    }


def test_no_target_without_every_rate(tmp_path: Path) -> None:
    # The worker cannot measure rates, so a plan that needs one draws no target line.
    samples = scrape(settings_from(tmp_path, FULL.replace("lead = 0.25\n", "")))
    assert samples.series("funnel_target_stage_entries") == []
    assert by_label(samples, "funnel_sla_commitment_stage_entries", "stage") == {"mql": 500}


def test_defaults_export_only_the_sla(tmp_path: Path) -> None:
    samples = scrape(load_settings(environ={}))
    assert samples.series("funnel_target_stage_entries") == []
    assert samples.series("funnel_sla_commitment_stage_entries") == []
    assert by_label(samples, "funnel_sla_followup_seconds", "team") == {"default": 86400}
