"""examples/funnel.toml, the configuration ``make demo`` runs with, switches every feature on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stream.config.funnel_rules import rules_from_settings
from stream.config.loading import load_settings
from stream.generate.profile import DEFAULT_PROFILE
from tests.harness import free_port

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "funnel.toml"


def test_the_example_configures_every_part_of_the_product() -> None:
    settings = load_settings(EXAMPLE, environ={})
    f, sla = settings.funnel, settings.sla

    assert set(f.definitions) == {*f.stages, *f.extra_stages}  # the report's definitions
    assert settings.labels.team == tuple(team for team, _ in DEFAULT_PROFILE.teams)
    assert settings.labels.source == tuple(source for source, _ in DEFAULT_PROFILE.sources)
    assert sla.marketing.mql_per_month > 0 and sla.marketing.sql_per_month > 0
    assert sla.business_hours is not None and sla.business_hours.holidays_country
    rules = rules_from_settings(settings)
    assert rules.calendar is not None and len(rules.calendar.holidays) > 20
    assert set(settings.north_star.conversion) == set(f.stages[:-1])


def test_funnel_plan_succeeds_with_the_example_and_no_broker() -> None:
    """Every rate is configured, so the plan needs no measurement (the bottleneck does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    env["FUNNEL_BROKER"] = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "--config", str(EXAMPLE), "plan", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["revenue_goal"] == 30_000_000
    assert plan["per_period"]["customer"] == 2500
    assert plan["measured_rates"] == {}
    assert plan["reps_needed"] > 0


def test_make_demo_uses_the_example() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert 'FUNNEL_CONFIG="$${FUNNEL_CONFIG:-examples/funnel.toml}" $(BIN)/funnel demo' in makefile
