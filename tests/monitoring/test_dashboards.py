"""The Grafana dashboards and their provisioning, checked without a Grafana.

What a reader of a dashboard relies on: every panel says what it shows (a description)
and in what unit; the links and alerts that point at a dashboard keep working (stable
uids); the data source and team/source selectors work on every panel; target lines are
drawn where a target exists; no query names a series that nobody exports; and a table
of leads asks the workers' lead list for columns it has.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from stream.core.leadlist import LEAD_LIST_STATUSES, LeadRow
from stream.runtime.leadsweb import LeadQuery
from tests.monitoring.sources import (
    DASHBOARDS,
    DATASOURCES,
    INFINITY,
    REPO,
    SYNTHETIC,
    Panel,
    all_panels,
    contract_metrics,
    dashboard,
    exposed_names,
    infinity_url,
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
# Tables of leads read the workers' /leads through Infinity, chosen by its own variable.
LEAD_LIST = {"type": INFINITY, "uid": "${leads_datasource}"}
# The keys of each lead in a /leads answer.
LEAD_KEYS = set(LeadRow("l", "t", None, None, None, None, 0.0, 0.0, 0.0, 0).as_json())
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


def _provisioned(name: str) -> dict[str, Any]:
    (source,) = load_yaml(DATASOURCES / name)["datasources"]
    found: dict[str, Any] = source
    return found


def test_every_panel_reads_the_data_source_variable() -> None:
    uid = _provisioned("prometheus.yml")["uid"]
    for name, model in _models().items():
        variables = {v["name"]: v for v in model["templating"]["list"]}
        source = variables["datasource"]
        assert source["type"] == "datasource" and source["query"] == "prometheus", name
        assert source["current"]["value"] == uid, f"{name}: defaults to another data source"
        for panel in panels(model):
            # Prometheus answers PromQL; the lead list (Infinity) a URL, and nothing else.
            assert panel["datasource"] in (DATASOURCE, LEAD_LIST), f"{name}: {panel['title']}"
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], f"{name}: {panel['title']}"
                promql = target["datasource"] == DATASOURCE
                assert ("expr" in target) == promql, f"{name}: {panel['title']}"
        for var in variables.values():
            if var["type"] == "query":
                assert var["datasource"] == DATASOURCE, f"{name}: ${var['name']}"


def _query(target: dict[str, Any]) -> str:
    """What a target asks: PromQL, or the URL of an Infinity target."""
    return str(target["expr"] if target["datasource"] == DATASOURCE else target["url"])


def test_template_variables_are_defined_and_used() -> None:
    seen = set()
    for name, model in _models().items():
        defined = {v["name"] for v in model["templating"]["list"]}
        queries = [_query(t) for p in panels(model) for t in p["targets"]]
        used = {v for e in queries for v in VARIABLE.findall(e) if not v.startswith("__")}
        assert used <= defined, f"{name}: undefined {used - defined}"
        queried = {v["name"] for v in model["templating"]["list"] if v["type"] == "query"}
        assert queried <= used, f"{name}: variables no panel uses: {queried - used}"
        seen |= defined
    assert {"datasource", "team", "source"} <= seen


def _lead_tables() -> list[Panel]:
    return [p for p in all_panels() if p.infinity_targets]


def test_lead_tables_ask_the_workers_lead_list_for_columns_it_has() -> None:
    tables = _lead_tables()
    assert [(p.file.name, p.title) for p in tables] == [("sales.json", "Most urgent open leads")]
    allowed = _provisioned("infinity.yml")["jsonData"]["allowedHosts"]
    for table in tables:
        where, panel = f"{table.file.name}: {table.title}", table.body
        variables = {v["name"]: v for v in dashboard(table.file)["templating"]["list"]}
        lead_list = variables["leads_datasource"]
        assert (lead_list["type"], lead_list["query"]) == ("datasource", INFINITY), where
        assert lead_list["current"]["value"] == _provisioned("infinity.yml")["uid"], where
        worker = variables["worker"]["current"]["value"]
        assert panel["type"] == "table", where
        for target in panel["targets"]:
            shape = (target["type"], target["source"], target["parser"], target["format"])
            assert shape == ("json", "url", "backend", "table"), where
            url = infinity_url(target, {"${worker}": worker})
            assert any(url.startswith(prefix) for prefix in allowed), f"{where}: {url}"
            parts = urllib.parse.urlsplit(url)
            assert parts.path == "/leads", where
            params = dict(urllib.parse.parse_qsl(parts.query, strict_parsing=True))
            query = LeadQuery.parse(params)  # what the worker makes of it; bad ones raise
            assert query.scope == "group" and query.status in LEAD_LIST_STATUSES, where
            assert target["root_selector"] == "leads", where
            selectors = {c["selector"] for c in target["columns"]}
            assert selectors <= LEAD_KEYS, f"{where}: not in /leads: {selectors - LEAD_KEYS}"


def test_lead_tables_give_every_number_and_time_column_a_unit() -> None:
    for table in _lead_tables():
        where, panel = f"{table.file.name}: {table.title}", table.body
        units = {
            o["matcher"]["options"]: p["value"]
            for o in panel["fieldConfig"]["overrides"]
            if o["matcher"]["id"] == "byName"
            for p in o["properties"]
            if p["id"] == "unit"
        }
        assert panel["fieldConfig"]["defaults"]["unit"] == "string", where  # ids as written
        for target in panel["targets"]:
            for column in target["columns"]:
                if column["type"] != "string":
                    assert units.get(column["text"]), f"{where}: {column['text']} has no unit"


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
