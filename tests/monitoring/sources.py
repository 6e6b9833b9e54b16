"""The monitoring sources as data: rule files, dashboards, the metrics contract, PromQL names.

Shared by the static checks and the live check. Everything is read from the repository:
``prometheus/``, ``grafana/`` and the metrics contract (``docs/contract/metrics.md``).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = REPO / "grafana" / "provisioning" / "datasources"
METRICS_CONTRACT = REPO / "docs" / "contract" / "metrics.md"

# The Grafana plugin that reads the workers' JSON views (/leads) for tables.
INFINITY = "yesoreyeram-infinity-datasource"
# Series Prometheus makes itself for every target; the only non-contract name a query uses.
SYNTHETIC = frozenset({"up"})
# What the dashboards' template variables become in the live check.
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
    "${team}": ".*",
    "$team": ".*",
    "${source}": ".*",
    "$source": ".*",
}


def load_yaml(path: Path) -> Any:
    """A YAML file's content."""
    return yaml.safe_load(path.read_text())


@dataclass(frozen=True)
class Rule:
    """One recording or alerting rule, with the group and file it is in."""

    file: Path
    group: str
    body: dict[str, Any]

    @property
    def expr(self) -> str:
        return str(self.body["expr"])

    @property
    def name(self) -> str:
        return str(self.body.get("record") or self.body["alert"])

    @property
    def is_alert(self) -> bool:
        return "alert" in self.body


def rules() -> list[Rule]:
    """Every rule of every file in prometheus/rules, in file order."""
    out: list[Rule] = []
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            out.extend(Rule(path, group["name"], body) for body in group["rules"])
    return out


def recording_names() -> set[str]:
    """The names the recording rules record."""
    return {r.name for r in rules() if not r.is_alert}


@dataclass(frozen=True)
class Panel:
    """One dashboard panel (rows excluded) and the dashboard file it is in."""

    file: Path
    body: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.body.get("title", ""))

    @property
    def exprs(self) -> list[str]:
        return [str(t["expr"]) for t in self.body.get("targets", []) if "expr" in t]

    @property
    def infinity_targets(self) -> list[dict[str, Any]]:
        """The targets that the Infinity data source answers (JSON from a URL)."""
        targets: list[dict[str, Any]] = self.body.get("targets", [])
        return [t for t in targets if t["datasource"]["type"] == INFINITY]


def dashboard(path: Path) -> dict[str, Any]:
    """A dashboard file's JSON model."""
    model: dict[str, Any] = json.loads(path.read_text())
    return model


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard model, those nested in collapsed rows too, rows excluded."""
    for panel in model.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def all_panels() -> list[Panel]:
    """Every panel of every dashboard."""
    return [Panel(path, p) for path in DASHBOARDS for p in panels(dashboard(path))]


def variable_metrics(model: dict[str, Any]) -> list[str]:
    """The metrics the template variables query (``label_values(metric, label)``)."""
    out = []
    for var in model.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", str(query))
            assert match, f"variable {var['name']}: expected label_values(metric, label)"
            out.append(match.group(1))
    return out


def infinity_url(target: Mapping[str, Any], variables: Mapping[str, str]) -> str:
    """The URL an Infinity target asks, its template variables replaced by ``variables``
    (``{"${worker}": "http://127.0.0.1:6066"}``) and its extra query parameters appended."""
    url = str(target["url"])
    for name, value in variables.items():
        url = url.replace(name, value)
    params = [(p["key"], p["value"]) for p in target.get("url_options", {}).get("params", [])]
    if params:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    return url


def select(answer: Any, selector: str) -> Any:
    """What a root selector written as a plain path (``leads``, ``data.items``) picks."""
    assert re.fullmatch(r"\w+(\.\w+)*", selector), f"not a plain path: {selector!r}"
    for key in selector.split("."):
        assert isinstance(answer, dict) and key in answer, f"{selector!r}: no {key!r}"
        answer = answer[key]
    return answer


def substitute(expr: str) -> str:
    """A dashboard expression with its template variables replaced by concrete values."""
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects, read from its syntax tree.

    Parsed by promql-parser (Prometheus's own grammar), after the dashboards' template
    variables are replaced; a selector written ``{__name__="x"}`` counts as ``x``.
    """
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            names.update(
                m.value
                for m in node.matchers.matchers
                if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal
            )

    promql_parser.walk(promql_parser.parse(substitute(expr)), visit)
    return names


def contract_metrics() -> dict[str, str]:
    """Every metric of metrics.md: name → type (``""`` for one only named in the prose)."""
    text = METRICS_CONTRACT.read_text()
    found: dict[str, str] = {}
    for name, kind in re.findall(r"^\|\s*`(funnel_\w+)`\s*\|\s*([\w ()]+?)\s*\|", text, re.M):
        found[name] = kind.split()[0]
    for name in re.findall(r"`(funnel_[a-z0-9_]+)", text):
        found.setdefault(name, "")
    return found


def exposed_names(contract: dict[str, str]) -> dict[str, str]:
    """Series names the contract allows in a query → the contract metric they come from."""
    out = {}
    for name, kind in contract.items():
        out[name] = name
        if kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out[name + suffix] = name
    return out
