"""The Grafana dashboards and their provisioning, checked without a Grafana.

What a reader of a dashboard relies on: every panel says what it shows (a description)
and in what unit; the links and alerts that point at a dashboard keep working (stable
uids); the data source and team/source selectors work on every panel; target lines are
drawn where a target exists; and no query names a series that nobody exports.
"""

from __future__ import annotations

import re
from typing import Any

from tests.monitoring.sources import (
    DASHBOARDS,
    REPO,
    SYNTHETIC,
    all_panels,
    contract_metrics,
    dashboard,
    exposed_names,
    load_yaml,
    metric_names,
    panels,
    recording_names,
    rules,
    variable_metrics,
)

# Alerts' dashboard_url, the docs and people's bookmarks use these: never change them.
UIDS = {
    "marketing.json": "funnel-marketing",
    "sales.json": "funnel-sales",
    "smarketing-sla.json": "funnel-smarketing-sla",
    "pipeline-health.json": "funnel-pipeline-health",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
VARIABLE = re.compile(r"\$\{?(\w+)")
RATE_RANGE = re.compile(r"\b(?:rate|irate)\([^\[\]]*\[([^\]]*)\]")
# The metrics that hold a target, and the legend a target line is drawn with.
TARGET_METRICS = (
    "funnel_target_stage_entries",
    "funnel_sla_commitment_stage_entries",
    "funnel_sla_followup_seconds",
)


def _models() -> dict[str, dict[str, Any]]:
    return {path.name: dashboard(path) for path in DASHBOARDS}


def test_dashboard_uids_are_stable_and_unique() -> None:
    assert {name: model["uid"] for name, model in _models().items()} == UIDS
    assert all(model["schemaVersion"] >= 39 for model in _models().values())


def test_every_panel_has_a_unit_and_a_description() -> None:
    lacking = [
        f"{p.file.name}: {p.title!r}"
        for p in all_panels()
        if not p.body.get("description", "").strip()
        or not p.body.get("fieldConfig", {}).get("defaults", {}).get("unit")
    ]
    assert not lacking, f"panels without a unit or a description: {lacking}"


def test_panel_ids_are_unique_and_panels_fit_the_grid() -> None:
    for name, model in _models().items():
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)), name
        for p in model["panels"]:
            grid = p["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{name}: {p['title']}"


def test_every_panel_reads_the_data_source_variable() -> None:
    provisioned = load_yaml(REPO / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uid = provisioned["datasources"][0]["uid"]
    for name, model in _models().items():
        variables = {v["name"]: v for v in model["templating"]["list"]}
        source = variables["datasource"]
        assert source["type"] == "datasource" and source["query"] == "prometheus", name
        assert source["current"]["value"] == uid, f"{name}: defaults to another data source"
        for panel in panels(model):
            assert panel["datasource"] == DATASOURCE, f"{name}: {panel['title']}"
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE, f"{name}: {panel['title']}"
        for var in variables.values():
            if var["type"] == "query":
                assert var["datasource"] == DATASOURCE, f"{name}: ${var['name']}"


def test_template_variables_are_defined_and_used() -> None:
    seen = set()
    for name, model in _models().items():
        defined = {v["name"] for v in model["templating"]["list"]}
        exprs = [t["expr"] for p in panels(model) for t in p["targets"]]
        used = {v for e in exprs for v in VARIABLE.findall(e) if not v.startswith("__")}
        assert used <= defined, f"{name}: undefined {used - defined}"
        queried = {v["name"] for v in model["templating"]["list"] if v["type"] == "query"}
        assert queried <= used, f"{name}: variables no panel uses: {queried - used}"
        seen |= defined
    assert {"datasource", "team", "source"} <= seen


def test_rates_use_the_rate_interval() -> None:
    for panel in all_panels():
        for expr in panel.exprs:
            for window in RATE_RANGE.findall(expr):
                assert window == "$__rate_interval", f"{panel.title}: rate over [{window}]"


def test_queries_name_only_contract_metrics_and_recorded_series() -> None:
    allowed = set(exposed_names(contract_metrics())) | recording_names() | SYNTHETIC
    unknown = {}
    for panel in all_panels():
        for expr in panel.exprs:
            if names := metric_names(expr) - allowed:
                unknown[f"{panel.file.name}: {panel.title}"] = names
    for name, model in _models().items():
        if names := set(variable_metrics(model)) - allowed:
            unknown[f"{name}: template variables"] = names
    assert not unknown, f"names outside metrics.md and the recording rules: {unknown}"


def _derived_from(metric: str) -> set[str]:
    """The metric and every recorded series computed from it, directly or not."""
    found = {metric}
    changed = True
    while changed:
        changed = False
        for rule in rules():
            if not rule.is_alert and rule.name not in found and metric_names(rule.expr) & found:
                found.add(rule.name)
                changed = True
    return found


def test_every_target_is_drawn_as_a_target_line() -> None:
    for metric in TARGET_METRICS:
        sources = _derived_from(metric)
        lines = []
        for panel in all_panels():
            if panel.body["type"] != "timeseries":
                continue
            override = panel.body["fieldConfig"]["overrides"]
            pattern = next(
                (o["matcher"]["options"] for o in override if o["matcher"]["id"] == "byRegexp"),
                None,
            )
            for target in panel.body["targets"]:
                if metric_names(target["expr"]) & sources and pattern:
                    legend = target["legendFormat"]
                    regex = pattern.strip("/")
                    if re.match(regex, legend):
                        lines.append(panel.title)
        assert lines, f"{metric}: no time series panel draws it as a target line"


def test_operations_doc_lists_every_panel() -> None:
    doc = (REPO / "docs" / "operations.md").read_text()
    missing = [p.title for p in all_panels() if f"  - {p.title}\n" not in doc]
    assert not missing, f"docs/operations.md does not list: {missing}"


def test_dashboard_provider_reads_the_dashboards_folder() -> None:
    provider = load_yaml(REPO / "grafana" / "provisioning" / "dashboards" / "funnel.yml")
    options = provider["providers"][0]
    assert options["type"] == "file"
    assert options["options"]["path"] == "/var/lib/grafana/dashboards/funnel"
