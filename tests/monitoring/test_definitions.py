"""The agreed stage definitions ([funnel.definitions]) in the dashboards' panel descriptions.

The dashboards are provisioned as static JSON, so the definitions of the stack's
configuration (docker/funnel.toml) are written into them by ``funnel dashboards``
(stream/observability/dashboards.py) and committed. These checks fail when someone edits the
definitions or a dashboard without regenerating.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from stream.cli.commands import main as funnel
from stream.config.loading import load_settings
from stream.config.settings import Settings
from stream.observability.dashboards import (
    HEADING,
    apply_definitions,
    apply_settings,
    dump,
    panel_stages,
    selected_stages,
    strip_definitions,
)
from tests.monitoring.sources import DASHBOARDS, REPO, all_panels, dashboard, panels

CONFIG = REPO / "docker" / "funnel.toml"
REGENERATE = "funnel --config docker/funnel.toml dashboards grafana/dashboards/*.json"
STAGES = ("visit", "lead", "mql", "sql", "opportunity", "customer", "contacted", "disqualified")
FUNNEL = STAGES[:6]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(CONFIG, {})


def _block(description: str) -> dict[str, str]:
    """The stage → definition lines of a description's block ({} without one)."""
    if HEADING not in description:
        return {}
    lines = description.split(HEADING + "\n", 1)[1].splitlines()
    return dict(line.removeprefix("- ").split(": ", 1) for line in lines)


def test_the_stack_configuration_defines_every_stage(settings: Settings) -> None:
    definitions = settings.funnel.definitions
    assert set(definitions) == set(settings.funnel.all_stages) == set(STAGES)
    assert all(text.strip() and "\n" not in text for text in definitions.values())


def test_committed_dashboards_carry_the_configured_definitions(settings: Settings) -> None:
    stale = [
        path.name
        for path in DASHBOARDS
        if dump(apply_settings(dashboard(path), settings)) != path.read_text(encoding="utf-8")
    ]
    assert not stale, (
        f"definitions or dashboards changed without regenerating: {stale}; run {REGENERATE}"
    )


def test_every_panel_that_shows_a_stage_carries_its_definition(settings: Settings) -> None:
    funnel_ = settings.funnel
    shown_somewhere = set()
    for panel in all_panels():
        stages = panel_stages(panel.body, funnel_.all_stages, funnel_.stages)
        block = _block(panel.body["description"])
        expected = {stage: funnel_.definitions[stage] for stage in stages}
        assert block == expected, f"{panel.file.name}: {panel.title}"
        shown_somewhere |= set(stages)
        # Independently of the rule's code: every stage a query names literally is there.
        for expr in panel.exprs:
            for value in re.findall(r'\bstage=~?"([\w|]+)"', expr):
                for stage in value.split("|"):
                    assert stage in block, f"{panel.file.name}: {panel.title}: {stage}"
        assert strip_definitions(panel.body["description"]).strip(), panel.title
    assert shown_somewhere == set(STAGES)


@pytest.mark.parametrize(
    ("title", "stages"),
    [
        ("Leads per hour by source", ["lead"]),
        ("Visit → lead by source (selected range)", ["visit", "lead"]),
        ("MQLs this month against commitment and target", ["mql"]),
        ("SQL → opportunity → customer (trailing 30 days)", ["sql", "opportunity", "customer"]),
        ("Conversion per stage against the plan (trailing 30 days)", list(FUNNEL)),
        ("Monthly targets (north star)", list(FUNNEL)),
        ("Stage re-entries per day", list(STAGES)),
        ("Delivered this month", ["mql", "sql"]),
        ("Leads awaiting follow-up", []),
        ("Consumer lag (messages)", []),
    ],
)
def test_which_panels_show_which_stages(title: str, stages: list[str]) -> None:
    (panel,) = [p for p in all_panels() if p.title == title]
    assert list(_block(panel.body["description"])) == stages


def test_the_pipeline_health_dashboard_shows_no_stage() -> None:
    (path,) = [p for p in DASHBOARDS if p.name == "pipeline-health.json"]
    assert not [p["title"] for p in panels(dashboard(path)) if HEADING in p["description"]]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('x{stage="mql"}', {"mql"}),
        ('x{stage=~"mql|sql"}', {"mql", "sql"}),
        ("x{stage=~'.*qual.*'}", {"disqualified"}),
        ('x{stage!="visit"}', set(STAGES) - {"visit"}),
        ('x{stage!~"visit|lead"}', set(STAGES) - {"visit", "lead"}),
        ('x{stage=~"l"}', set()),  # anchored, as in PromQL
        ('x{stage=~"$stage"}', set(STAGES)),
        ('x{stage=~".+", stage!="lead"}', set(STAGES) - {"lead"}),
        ('x{to_stage="sql"} / y{stage="lead"}', {"sql", "lead"}),
        ('x{source="a"}', None),
        ("sum by (stage) (x)", None),
    ],
)
def test_stage_matchers(expr: str, expected: set[str] | None) -> None:
    assert selected_stages(expr, STAGES) == expected


def _model(description: str = "Counts things.") -> dict[str, Any]:
    def panel(pid: int, expr: str, legend: str = "") -> dict[str, Any]:
        target = {"expr": expr, "legendFormat": legend}
        return {"id": pid, "type": "stat", "description": description, "targets": [target]}

    return {
        "uid": "u",
        "panels": [
            panel(1, 'sum(x{stage="mql"})'),
            panel(2, "sum(up)"),
            {
                "id": 3,
                "type": "row",
                "panels": [
                    panel(4, 'conv{stage=~"sql|opportunity"}', "{{stage}} → {{to_stage}}"),
                    panel(5, "sum by (stage) (x)", "{{stage}}"),
                    panel(6, "funnel_target_stage_entries", "{{stage}}"),
                ],
            },
        ],
    }


def _descriptions(model: dict[str, Any]) -> dict[int, str]:
    return {p["id"]: p["description"] for p in panels(model)}


def test_apply_definitions_nested_panels_idempotent_and_replacing() -> None:
    defs = {s: f"meaning of {s}" for s in STAGES}
    model = _model()
    pristine = copy.deepcopy(model)
    once = apply_definitions(model, defs, STAGES, funnel=FUNNEL)
    assert model == pristine, "the input must not be changed"
    got = _descriptions(once)
    assert got[1] == f"Counts things.\n\n{HEADING}\n- mql: meaning of mql"
    assert got[2] == "Counts things."
    assert list(_block(got[4])) == ["sql", "opportunity", "customer"]
    assert list(_block(got[5])) == list(STAGES)
    assert list(_block(got[6])) == list(FUNNEL)
    assert apply_definitions(once, defs, STAGES, funnel=FUNNEL) == once

    changed = apply_definitions(once, {**defs, "mql": "new meaning"}, STAGES, funnel=FUNNEL)
    desc = _descriptions(changed)[1]
    assert desc == f"Counts things.\n\n{HEADING}\n- mql: new meaning"
    assert desc.count(HEADING) == 1

    without_mql = {k: v for k, v in defs.items() if k != "mql"}
    cleared = apply_definitions(changed, without_mql, STAGES, funnel=FUNNEL)
    assert _descriptions(cleared)[1] == "Counts things."
    assert apply_definitions(once, {}, STAGES, funnel=FUNNEL) == model


def test_an_empty_description_gets_only_the_block() -> None:
    model = apply_definitions(_model(""), {"mql": "m"}, STAGES)
    assert _descriptions(model)[1] == f"{HEADING}\n- mql: m"
    assert apply_definitions(model, {"mql": "m"}, STAGES) == model
    assert _descriptions(apply_definitions(model, {}, STAGES))[1] == ""


def test_the_command_rewrites_files_in_place(tmp_path: Path, capsys: Any) -> None:
    config = tmp_path / "funnel.toml"
    config.write_text('[funnel.definitions]\nmql = "Asked for a demo, 10+ employees"\n')
    files = []
    for path in DASHBOARDS:
        shutil.copy(path, tmp_path / path.name)
        files.append(str(tmp_path / path.name))
    assert funnel(["dashboards", "--config", str(config), *files]) == 0
    marketing = json.loads((tmp_path / "marketing.json").read_text())
    (mqls,) = [p for p in panels(marketing) if p["title"] == "MQLs per hour by source"]
    assert _block(mqls["description"]) == {"mql": "Asked for a demo, 10+ employees"}
    (leads,) = [p for p in panels(marketing) if p["title"] == "Leads per hour by source"]
    assert HEADING not in leads["description"]
    assert "definitions updated" in capsys.readouterr().out
    before = {f: Path(f).read_text() for f in files}
    assert funnel(["dashboards", "--config", str(config), *files]) == 0
    assert {f: Path(f).read_text() for f in files} == before
    assert "definitions updated" not in capsys.readouterr().out


def test_the_command_refuses_a_broken_file_in_one_line(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FUNNEL_CONFIG", raising=False)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert funnel(["dashboards", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"funnel dashboards: {broken}:")
