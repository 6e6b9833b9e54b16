"""``funnel plan``: the reverse funnel of interface.md, measured rates, the bottleneck, refusals."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stream.config.funnel_rules import rules_from_settings
from stream.config.loading import load_settings
from stream.config.topics import TopicNames
from stream.generate import generate_messages
from stream.planning.plan import Measured, PlanError, bottleneck, lead_times, reverse_funnel
from stream.report.recount import recount
from tests.harness import free_port, produce, read_inputs

STAGES = ("visit", "lead", "mql", "sql", "opportunity", "customer")
WORKED = """
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


def funnel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("funnel ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# The worked example, by hand: 1,000,000 a year at 20,000 a deal.
CUSTOMERS = 50  # 1,000,000 / 20,000
OPPORTUNITIES = 200  # 50 / 0.25
SQLS = 400  # 200 / 0.5
MQLS = 1143  # 400 / 0.35 = 1142.86 -> 1143
LEADS = 4572  # 1143 / 0.25
VISITS = 182880  # 4572 / 0.025
PER_YEAR = {
    "visit": VISITS,
    "lead": LEADS,
    "mql": MQLS,
    "sql": SQLS,
    "opportunity": OPPORTUNITIES,
    "customer": CUSTOMERS,
}
# Each stage divided by 12 and rounded up on its own.
PER_MONTH = {
    "visit": 15240,  # 182,880 / 12 exactly
    "lead": 381,  # 4,572 / 12 exactly
    "mql": 96,  # 95.25
    "sql": 34,  # 33.33
    "opportunity": 17,  # 16.67
    "customer": 5,  # 4.17
}
REPS = 3  # 381 leads a month / 150 per rep = 2.54


def test_worked_example_by_hand() -> None:
    plan = reverse_funnel(
        STAGES,
        revenue_goal=1_000_000,
        average_deal_size=20_000,
        period="year",
        rates={"visit": 0.025, "lead": 0.25, "mql": 0.35, "sql": 0.5, "opportunity": 0.25},
        rep_capacity=150,
    )
    assert dict(plan.per_period) == PER_YEAR
    assert dict(plan.per_month) == PER_MONTH
    assert plan.followups_per_month == 381
    assert plan.reps_needed == REPS


def test_every_step_is_exact_decimal_arithmetic() -> None:
    # 21 / 0.35 is 60 exactly; float division gives 60.00000000000001, which ceil makes 61.
    plan = reverse_funnel(
        ("mql", "sql"),
        revenue_goal=21,
        average_deal_size=1,
        period="quarter",
        rates={"mql": 0.35},
        rep_capacity=10,
    )
    assert dict(plan.per_period) == {"mql": 60, "sql": 21}
    # Per month, each stage on its own: ceil(60 / 3) = 20 and ceil(21 / 3) = 7.
    assert dict(plan.per_month) == {"mql": 20, "sql": 7}


def test_a_missing_rate_is_named() -> None:
    with pytest.raises(PlanError, match=r"north_star\.conversion\.lead"):
        reverse_funnel(
            STAGES,
            revenue_goal=1,
            average_deal_size=1,
            period="year",
            rates={"visit": 0.1, "mql": 0.5, "sql": 0.5, "opportunity": 0.5},
            rep_capacity=150,
        )


def test_bottleneck_is_the_part_furthest_below_the_plan() -> None:
    plan = reverse_funnel(
        STAGES,
        revenue_goal=1_000_000,
        average_deal_size=20_000,
        period="year",
        rates={"visit": 0.025, "lead": 0.25, "mql": 0.35, "sql": 0.5, "opportunity": 0.25},
        rep_capacity=150,
    )
    # 30.4375 days (one average month): visits on plan, leads convert 2.5 %, but only 10 %
    # of leads become MQLs against the 25 % needed.
    entries = {"visit": 15240, "lead": 381, "mql": 38, "sql": 19, "opportunity": 5, "customer": 1}
    gap = bottleneck(plan, Measured(entries, 365.25 / 12))
    assert gap is not None
    assert (gap.stage, gap.kind, gap.from_stage) == ("mql", "conversion", "lead")
    assert gap.measured_rate == pytest.approx(38 / 381)
    # At the planned 381 leads a month, 9.97 % makes 38 MQLs: 58 short of the 96 needed.
    assert gap.shortfall_per_month == 96 - 38
    assert "mql" in gap.describe() and "58" in gap.describe()


def test_plan_json_reproduces_the_worked_example(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    config = tmp_path / "funnel.toml"
    config.write_text(WORKED)
    env = {"FUNNEL_BROKER": broker, "FUNNEL_TOPIC_PREFIX": topic_prefix}
    result = funnel("plan", "--json", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)  # exactly one object: json.loads refuses trailing text
    assert out["period"] == "year"
    assert out["per_period"] == PER_YEAR
    assert out["per_month"] == PER_MONTH
    assert out["reps_needed"] == REPS
    assert out["followups_per_month"] == 381
    assert out["measured_rates"] == {}
    assert out["bottleneck"] is None  # the topics are empty: nothing to compare with

    table = funnel("plan", "--config", str(config), env=env)
    assert table.returncode == 0, table.stderr
    assert "182,880" in table.stdout and "15,240" in table.stdout
    assert "3 reps" in table.stdout


def test_plan_without_a_broker_still_plans_when_every_rate_is_set(tmp_path: Path) -> None:
    config = tmp_path / "funnel.toml"
    config.write_text(WORKED)
    port = free_port()
    result = funnel("plan", "--config", str(config), env={"FUNNEL_BROKER": f"127.0.0.1:{port}"})
    assert result.returncode == 0, result.stderr
    assert "15,240" in result.stdout
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in result.stdout


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[north_star.conversion]\nmql = 1.5\n", "north_star.conversion.mql"),
        ("[north_star.conversion]\nlead = 0.0\n", "north_star.conversion.lead"),
        ("[north_star.conversion]\nlunch = 0.5\n", "north_star.conversion.lunch"),
        ("[north_star]\nrevenue_goal = -5\n", "north_star.revenue_goal"),
    ],
)
def test_bad_configuration_is_refused_naming_the_key(tmp_path: Path, toml: str, key: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    line = one_line_error(funnel("plan", "--config", str(config), env={}))
    assert key in line


def test_unmeasurable_rate_is_a_one_line_error(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    config = tmp_path / "funnel.toml"
    config.write_text(WORKED.replace("lead = 0.25\n", ""))
    env = {"FUNNEL_BROKER": broker, "FUNNEL_TOPIC_PREFIX": topic_prefix}
    line = one_line_error(funnel("plan", "--config", str(config), env=env))
    assert "north_star.conversion.lead" in line
    assert "not measurable" in line


MEASURED = """
[funnel]
stages = ["visit", "lead", "mql", "sql"]
extra_stages = ["contacted", "opportunity", "customer", "disqualified"]

[north_star]
revenue_goal = 100
period = "month"
average_deal_size = 1

[north_star.conversion]
visit = 0.025
mql = 0.9
"""


async def test_missing_rates_are_measured_and_the_bottleneck_named(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    end = time.time() - 3600
    messages = generate_messages(seed=7, start=end - 5 * 86400, end=end, count=20_000, topics=names)
    await produce(broker, [(m.topic, m.key, m.value, None) for m in messages])
    config = tmp_path / "funnel.toml"
    config.write_text(MEASURED)
    env = {"FUNNEL_BROKER": broker, "FUNNEL_TOPIC_PREFIX": topic_prefix}
    result = funnel("plan", "--json", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)

    # The expectation: the same core over the same messages, counted here.
    settings = load_settings(config, environ={})
    inputs = await read_inputs(broker, names)
    entries = recount(inputs, rules_from_settings(settings), clock_mode="wall").entries
    stage_totals = {s: sum(n for (st, _), n in entries.items() if st == s) for s in STAGES[:4]}
    lead_rate = stage_totals["mql"] / stage_totals["lead"]
    assert out["measured_rates"] == {"lead": round(lead_rate, 6)}
    assert out["measured"]["entries"] == stage_totals

    # 100 SQLs a month at 90 % from MQLs is far beyond the ~25 % the data shows.
    sql_rate = stage_totals["sql"] / stage_totals["mql"]
    gap = out["bottleneck"]
    assert (gap["stage"], gap["kind"], gap["from_stage"]) == ("sql", "conversion", "mql")
    assert gap["measured_rate"] == round(sql_rate, 6)
    per_month = out["per_month"]
    assert per_month["sql"] == 100 and per_month["mql"] == math.ceil(100 / 0.9)
    assert gap["shortfall_per_month"] == math.ceil(100 - per_month["mql"] * sql_rate)

    table = funnel("plan", "--config", str(config), env=env)
    assert "(measured)" in table.stdout
    assert "Bottleneck: sql: mql → sql converts" in table.stdout


def test_no_goal_is_a_one_line_error() -> None:
    line = one_line_error(funnel("plan", env={}))
    assert "north_star.revenue_goal is not set" in line


def test_missing_rate_and_no_broker_is_a_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "funnel.toml"
    config.write_text(WORKED.replace("mql = 0.35\n", "").replace("sql = 0.5\n", ""))
    port = free_port()
    line = one_line_error(
        funnel(
            "plan",
            "--config",
            str(config),
            env={"FUNNEL_BROKER": f"127.0.0.1:{port}", "FUNNEL_KAFKA_CONNECT_TIMEOUT": "1s"},
        )
    )
    assert "north_star.conversion.mql, north_star.conversion.sql" in line
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in line


D = 86400.0


def test_lead_times_sum_the_p50_of_the_steps_on_the_way() -> None:
    steps = {
        ("lead", "mql"): (30, 4 * D),
        ("mql", "sql"): (12, 2 * D),
        ("sql", "opportunity"): (8, 2 * D),
        ("opportunity", "customer"): (3, 10 * D),
    }
    times = lead_times(STAGES, steps, whole_way=(3, 20 * D))
    # customer 0; opportunity 10d; sql 10 + 2; mql 12 + 2; lead 14 + 4; a visit is no step.
    assert dict(times.seconds) == {
        "visit": None,
        "lead": 18 * D,
        "mql": 14 * D,
        "sql": 12 * D,
        "opportunity": 10 * D,
        "customer": 0.0,
    }
    assert times.to_stage == "customer" and times.whole_way == (3, 20 * D)


def test_a_step_not_measured_leaves_the_stages_before_it_unknown() -> None:
    steps = {("lead", "mql"): (30, 4 * D), ("sql", "opportunity"): (8, 2 * D)}
    times = lead_times(STAGES, steps)
    assert dict(times.seconds) == {
        "visit": None,
        "lead": None,
        "mql": None,
        "sql": None,  # opportunity → customer was not measured
        "opportunity": None,
        "customer": 0.0,
    }


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def test_plan_says_how_far_ahead_each_stage_is_needed(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    day0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    # Days after day0 of lead, mql, sql, opportunity, customer:
    paths = {"L1": [0, 2, 4, 10, 20], "L2": [0, 4, 5, 7, 21], "L3": [0, 6, 9]}
    stages = ["lead", "mql", "sql", "opportunity", "customer"]
    records: list[tuple[str, bytes, bytes, None]] = []
    for lid, days in paths.items():
        for stage, d in zip(stages, days, strict=False):
            at = _iso(day0 + timedelta(days=d))
            if stage == "lead":
                event = {"type": "lead_created", "source": "organic", "team": "sales-a"}
                topic = names.leads
            else:
                event = {"type": "stage_changed", "to_stage": stage}
                topic = names.transitions
            event |= {"event_id": f"{lid}-{stage}", "lead_id": lid, "occurred_at": at}
            records.append((topic, lid.encode(), json.dumps(event).encode(), None))
    await produce(broker, records)
    config = tmp_path / "funnel.toml"
    config.write_text(WORKED)
    env = {"FUNNEL_BROKER": broker, "FUNNEL_TOPIC_PREFIX": topic_prefix}
    result = funnel("plan", "--json", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    # The contract's keys are unchanged.
    assert out["per_month"] == PER_MONTH and out["reps_needed"] == REPS

    # By hand, nearest rank: lead → mql 2, 4, 6 days: p50 4d; mql → sql 2, 1, 3: 2d;
    # sql → opportunity 6, 2: 2d; opportunity → customer 10, 14: 10d; lead → customer
    # directly 20, 21: 20d.
    times = out["lead_times"]
    assert times["to_stage"] == "customer"
    assert [
        (s["from_stage"], s["to_stage"], s["count"], s["p50_seconds"]) for s in times["steps"]
    ] == [
        ("lead", "mql", 3, 4 * D),
        ("mql", "sql", 3, 2 * D),
        ("sql", "opportunity", 2, 2 * D),
        ("opportunity", "customer", 2, 10 * D),
    ]
    assert times["whole_way"] == {
        "from_stage": "lead",
        "to_stage": "customer",
        "count": 2,
        "p50_seconds": 20 * D,
    }
    ahead = {"lead": 18, "mql": 14, "sql": 12, "opportunity": 10, "customer": 0}
    assert {stage: v["seconds"] for stage, v in times["stages"].items()} == {
        "visit": None,
        **{stage: days * D for stage, days in ahead.items()},
    }
    # For next month's customers (UTC, the default time zone): each stage's entries are
    # needed that many days before the month, up to that many days before its end.
    now = datetime.now(UTC)
    first = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    after = datetime(first.year + first.month // 12, first.month % 12 + 1, 1, tzinfo=UTC)
    assert times["for_month"] == first.strftime("%Y-%m")
    mql = times["stages"]["mql"]
    assert mql["needed_from"] == _iso(first - timedelta(days=14))
    assert mql["needed_before"] == _iso(after - timedelta(days=14))

    table = funnel("plan", "--config", str(config), env=env)
    assert table.returncode == 0, table.stderr
    assert f"for {first.strftime('%B %Y')}'s customers, needed" in table.stdout
    lead_time_table = table.stdout.split("needed\n", 1)[1].splitlines()
    lines = {line.split()[0]: line.split() for line in lead_time_table}
    assert lines["mql"][1] == "14.0d" and lines["lead"][1] == "18.0d"
    assert lines["customer"][1] == "0"
    assert lines["visit"][1] == "-"
    assert "Measured lead → customer directly: p50 20.0d over 2 customers." in table.stdout
