"""The Prometheus rules: promtool's checks and unit tests, and the alerts' conventions.

Every alert must be actionable from its notification alone: how long the condition held
(``for``), how urgent it is and who acts (``severity``, ``owner``), what happened with the
value and labels (``summary``, ``description``), and where to go next (a ``runbook_url``
that lands on the alert's heading in docs/runbooks.md, a ``dashboard_url`` that opens an
existing dashboard).
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import promql_parser
import pytest

from stream.cli.commands import build_parser
from stream.config.settings import Settings
from tests.monitoring.sources import (
    DASHBOARDS,
    PROMETHEUS,
    REPO,
    RULE_FILES,
    RULE_TESTS,
    SYNTHETIC,
    contract_metrics,
    dashboard,
    exposed_names,
    load_yaml,
    metric_names,
    recording_names,
    rules,
)

RUNBOOKS = REPO / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/funnel/funnel/blob/main/"
DASHBOARD_URL = re.compile(r"http://localhost:3000/d/([\w-]+)/[\w-]+(\?.*)?")
RECORD_NAME = re.compile(r"[a-z_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*")
DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")
SEVERITIES = {"critical", "warning"}
OWNERS = {"platform", "sales", "marketing"}
RUNBOOK_PARTS = ("What it means", "Who is affected", "Dashboard", "First checks", "Remedies")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: apt-get install prometheus (make test does)")
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_sections() -> dict[str, str]:
    """docs/runbooks.md's level-2 sections: anchor → text."""
    sections: dict[str, str] = {}
    for chunk in re.split(r"^## ", RUNBOOKS.read_text(), flags=re.M)[1:]:
        heading, _, body = chunk.partition("\n")
        sections[github_anchor(heading)] = body
    return sections


def alerts() -> list[dict[str, Any]]:
    return [r.body for r in rules() if r.is_alert]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_passes_promtool_check(path: Path) -> None:
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(path: Path) -> None:
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_scrape_config_passes_promtool_check() -> None:
    result = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_recording_rules_are_named_level_metric_operations() -> None:
    bad = sorted(name for name in recording_names() if not RECORD_NAME.fullmatch(name))
    assert not bad, f"not level:metric:operations: {bad}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum without (team) (rate(a_total[5m]))", {"a_total"}),
        ("a / ignoring (le) group_left (stage) b", {"a", "b"}),
        ("a * on (team) group_right c:d:e offset 1h", {"a", "c:d:e"}),
        (
            'sum by (le) (rate(h_bucket{team=~"$team"}[$__rate_interval]))',
            {"h_bucket"},
        ),
        ('{__name__="x", job="funnel"} and max_over_time(up[1h:5m])', {"x", "up"}),
    ],
)
def test_metric_names_are_read_from_the_syntax_tree(expr: str, names: set[str]) -> None:
    """Grouping, matching and label clauses hold label names, never metrics."""
    assert metric_names(expr) == names


def test_rules_query_only_contract_metrics_and_recorded_series() -> None:
    allowed = set(exposed_names(contract_metrics())) | recording_names() | SYNTHETIC
    unknown = {r.name: metric_names(r.expr) - allowed for r in rules()}
    assert not {k: v for k, v in unknown.items() if v}, "names outside metrics.md and the rules"


def test_every_alert_says_how_long_how_urgent_and_who_acts() -> None:
    for alert in alerts():
        name = alert["alert"]
        assert DURATION.fullmatch(str(alert.get("for", ""))), f"{name}: no for"
        assert alert["labels"]["severity"] in SEVERITIES, name
        assert alert["labels"]["owner"] in OWNERS, name


def test_every_alert_describes_its_value_and_labels() -> None:
    for alert in alerts():
        name, annotations = alert["alert"], alert["annotations"]
        assert annotations["summary"].strip(), name
        assert "$value" in annotations["description"], f"{name}: the value is not shown"
        if "absent(" not in alert["expr"]:  # absent() has no labels to show
            text = annotations["summary"] + annotations["description"]
            assert "$labels." in text, f"{name}: no label is shown"


def test_every_runbook_url_lands_on_the_alerts_heading() -> None:
    sections = runbook_sections()
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_BASE), url
        path, _, anchor = url.removeprefix(RUNBOOK_BASE).partition("#")
        assert (REPO / path).resolve() == RUNBOOKS.resolve(), url
        assert anchor == alert["alert"].lower(), url
        assert anchor in sections, f"{url}: no such heading in docs/runbooks.md"


def test_every_runbook_says_what_who_where_checks_and_remedies() -> None:
    sections = runbook_sections()
    for name in {alert["alert"] for alert in alerts()}:
        body = sections[name.lower()]
        missing = [part for part in RUNBOOK_PARTS if f"**{part}" not in body]
        assert not missing, f"runbook of {name} lacks {missing}"


def test_every_dashboard_url_opens_an_existing_dashboard() -> None:
    uids = {dashboard(path)["uid"] for path in DASHBOARDS}
    for alert in alerts():
        url = alert["annotations"]["dashboard_url"]
        match = DASHBOARD_URL.fullmatch(url)
        assert match, f"{alert['alert']}: {url}"
        assert match.group(1) in uids, f"{alert['alert']}: no dashboard {match.group(1)}"


def _alert_cases() -> list[tuple[str, list[dict[str, Any]]]]:
    """Every (alertname, expected alerts) of every promtool test case."""
    cases = []
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.append((case["alertname"], case.get("exp_alerts") or []))
    return cases


def test_every_alert_rule_fires_in_a_test_case_and_stays_quiet_in_another() -> None:
    cases = _alert_cases()
    for alert in alerts():
        name, labels = alert["alert"], alert["labels"]
        fired = [
            expected["exp_labels"]
            for case_name, alerts_expected in cases
            if case_name == name
            for expected in alerts_expected
        ]
        assert any(labels.items() <= found.items() for found in fired), (
            f"{name} {labels}: no promtool case where it fires"
        )
        assert any(case_name == name and not expected for case_name, expected in cases), (
            f"{name}: no promtool case where it does not fire"
        )


def test_rule_tests_evaluate_recording_groups_before_alerts() -> None:
    # Without group_eval_order promtool evaluates groups in random order, and an alert may
    # read a recorded series of the previous evaluation: flaky annotations.
    for path in RULE_TESTS:
        content = load_yaml(path)
        groups = []
        for rule_file in content["rule_files"]:
            groups += [g["name"] for g in load_yaml(path.parent / rule_file)["groups"]]
        order = content.get("group_eval_order", [])
        assert set(groups) <= set(order), f"{path.name}: group_eval_order lacks groups"
        alert_groups = {r.group for r in rules() if r.is_alert}
        first_alert = min(order.index(g) for g in alert_groups if g in order)
        recording = [g for g in order if g not in alert_groups]
        assert all(order.index(g) < first_alert for g in recording), path.name


def test_every_threshold_is_read_by_an_alert() -> None:
    thresholds = {r.name for r in rules() if not r.is_alert and r.group == "funnel-thresholds"}
    read = set()
    for r in rules():
        if r.group != "funnel-thresholds":
            read |= metric_names(r.expr)
    assert thresholds <= read, f"thresholds nobody reads: {sorted(thresholds - read)}"


def _stage_selected(expr: promql_parser.Expr) -> set[str]:
    """The values of every ``stage="..."`` matcher in an expression."""
    found: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.update(
                m.value
                for m in node.matchers.matchers
                if m.name == "stage" and m.op == promql_parser.MatchOp.Equal
            )

    promql_parser.walk(expr, visit)
    return found


def test_stage_to_next_rules_follow_the_default_stages() -> None:
    """The conversion rules are written out per pair of stages, so they must follow the funnel.

    Each rule labelled ``{stage: a, to_stage: b}`` divides b's series by a's; together a
    record's rules cover exactly the consecutive pairs of the default ``funnel.stages``.
    A change of the default stages fails here until prometheus/rules/ follows it (a
    deployment with other stages writes its own pairs).
    """
    stages = Settings().funnel.stages
    expected = set(itertools.pairwise(stages))
    pairs: dict[str, set[tuple[str, str]]] = {}
    for rule in rules():
        labels = rule.body.get("labels", {})
        if "to_stage" not in labels:
            continue
        pair = (labels["stage"], labels["to_stage"])
        pairs.setdefault(rule.name, set()).add(pair)
        tree = promql_parser.parse(rule.expr)
        assert isinstance(tree, promql_parser.BinaryExpr), f"{rule.name} {pair}: not a ratio"
        assert (_stage_selected(tree.lhs), _stage_selected(tree.rhs)) == (
            {pair[1]},
            {pair[0]},
        ), f"{rule.name} {pair}: expected {pair[1]} / {pair[0]}"
    assert pairs, "no stage-to-next rules found"
    for name, found in pairs.items():
        assert found == expected, f"{name}: pairs {sorted(found)} != stages {stages}"


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("FunnelLeadsOverdue", "--status overdue --team {{ $labels.team }}"),
        (
            "FunnelLeadsAtRisk",
            "--status at_risk --team {{ $labels.team }} --before {{ $labels.before }}",
        ),
    ],
)
def test_lead_alerts_hand_over_the_command_listing_their_leads(name: str, command: str) -> None:
    """The command filters on exactly the alert's labels, and its options exist."""
    (alert,) = [a for a in alerts() if a["alert"] == name]
    description = " ".join(alert["annotations"]["description"].split())
    assert f"`funnel leads {command}`" in description
    args = command.replace("{{ $labels.team }}", "t").replace("{{ $labels.before }}", "4h")
    parsed = build_parser().parse_args(["leads", *args.split()])
    assert f"funnel_leads_{parsed.status}" in alert["expr"]  # the gauge the alert reads
