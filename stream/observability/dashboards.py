"""The agreed stage definitions (``[funnel.definitions]``) in the dashboards' panel descriptions.

A panel *shows a stage* when one of its queries (``targets[].expr``) selects it or draws a
series per stage:

- a ``stage`` or ``to_stage`` label matcher (``=``, ``!=``, ``=~``, ``!~``; regexes fully
  anchored, as in PromQL) selects the configured stages it matches; several matchers on the
  same label in one selector must all match; a value with a template variable (``$…``)
  selects every stage;
- a query with such matchers whose legend names ``{{to_stage}}`` (a conversion, stage to
  next) also shows the next stage in the funnel of each selected one;
- a query with no stage matcher whose series are per stage (its legend names ``{{stage}}``
  or ``{{to_stage}}``, or it aggregates ``by (…stage…)``) shows every configured stage,
  funnel and extra alike; but the plan's series, which exist for the funnel's stages only
  (conversions, stage to next, and the north star's targets and marketing's commitments:
  a ``{{to_stage}}`` legend or a ``funnel_target_…``, ``funnel_sla_commitment_…`` or
  ``funnel_stage_conversion…`` name), show every stage of the funnel.

Such a panel's description ends with a block, after a fixed heading line, that lists the
definition of each of its stages that has one, in the configured order. The block is
rewritten on every run (idempotent; a changed or removed definition replaces the old
block), and the text above it is never touched. The files are written back with the
formatting they are kept in (two-space indent, key order kept, UTF-8, final newline).

``funnel dashboards --config docker/funnel.toml grafana/dashboards/*.json`` and
``funnel dashboards`` rewrite the files in place.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from stream.config.settings import Settings
from stream.errors import FunnelError

HEADING = "Agreed definitions ([funnel.definitions]):"
"""The line a panel description's definitions block starts with (after a blank line)."""

_SEPARATOR = "\n\n"
_SELECTOR = re.compile(r"\{[^{}]*\}")
_MATCHER = re.compile(
    r"(?<![\w:])(stage|to_stage)\s*(=~|!~|!=|=)\s*"
    r"(\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|`[^`]*`)"
)
_BY_STAGE = re.compile(r"\b(?:by|on)\s*\([^()]*\b(?:to_)?stage\b[^()]*\)")
_PER_STAGE_LEGEND = re.compile(r"\{\{\s*(?:to_)?stage\s*\}\}")
_TO_STAGE_LEGEND = re.compile(r"\{\{\s*to_stage\s*\}\}")
_FUNNEL_ONLY = re.compile(r"funnel_(?:target|sla_commitment|stage_conversion)[_:]")


class DashboardError(FunnelError):
    """A dashboard file cannot be read, parsed or written, or a stage matcher is invalid."""


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return body if literal.startswith("`") else re.sub(r"\\(.)", r"\1", body)


def _matching(op: str, value: str, stages: Sequence[str]) -> set[str]:
    if "$" in value:  # a template variable: any stage may be chosen
        return set(stages)
    if op in ("=", "!="):
        hits = {s for s in stages if s == value}
    else:
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise DashboardError(f"stage matcher {value!r}: not a valid regex ({exc})") from None
        hits = {s for s in stages if pattern.fullmatch(s)}
    return hits if op in ("=", "=~") else set(stages) - hits


def selected_stages(expr: str, stages: Sequence[str]) -> set[str] | None:
    """The stages the ``stage``/``to_stage`` matchers of a query select; None without any."""
    found: set[str] | None = None
    for selector in _SELECTOR.finditer(expr):
        per_label: dict[str, set[str]] = {}
        for label, op, literal in _MATCHER.findall(selector.group()):
            hits = _matching(op, _unquote(literal), stages)
            per_label[label] = per_label[label] & hits if label in per_label else hits
        for hits in per_label.values():
            found = hits if found is None else found | hits
    return found


def target_stages(
    target: Mapping[str, Any], stages: Sequence[str], funnel: Sequence[str]
) -> set[str]:
    """The stages one query of a panel shows (see the module's rule)."""
    expr = str(target.get("expr", ""))
    legend = str(target.get("legendFormat", ""))
    selected = selected_stages(expr, stages)
    if selected is None:
        if not (_PER_STAGE_LEGEND.search(legend) or _BY_STAGE.search(expr)):
            return set()
        if _TO_STAGE_LEGEND.search(legend) or _FUNNEL_ONLY.search(expr):
            return set(funnel) & set(stages)
        return set(stages)
    if _TO_STAGE_LEGEND.search(legend):
        pairs = itertools.pairwise(funnel)
        selected |= {after for before, after in pairs if before in selected}
    return selected & set(stages)


def panel_stages(
    panel: Mapping[str, Any], stages: Sequence[str], funnel: Sequence[str] | None = None
) -> list[str]:
    """The stages a panel shows, in the order of ``stages``."""
    order = stages if funnel is None else funnel
    shown: set[str] = set()
    for target in panel.get("targets", []):
        shown |= target_stages(target, stages, order)
    return [s for s in stages if s in shown]


def panels(model: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard model, those nested in rows too, rows excluded."""
    for panel in model.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def strip_definitions(description: str) -> str:
    """A panel description without its definitions block."""
    if description.startswith(HEADING + "\n"):
        return ""
    at = description.find(_SEPARATOR + HEADING + "\n")
    return description if at < 0 else description[:at]


def with_definitions(description: str, definitions: Iterable[tuple[str, str]]) -> str:
    """A panel description with its definitions block replaced by one for ``definitions``."""
    base = strip_definitions(description)
    lines = [f"- {stage}: {text}" for stage, text in definitions]
    if not lines:
        return base
    block = "\n".join([HEADING, *lines])
    return f"{base}{_SEPARATOR}{block}" if base else block


def apply_definitions(
    dashboard: dict[str, Any],
    definitions: Mapping[str, str],
    stages: Sequence[str],
    *,
    funnel: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A copy of ``dashboard`` whose panels that show a stage carry its agreed definition.

    ``stages`` are every configured stage in order (``settings.funnel.all_stages``);
    ``funnel`` is the funnel's order, which a ``{{to_stage}}`` legend follows (default:
    ``stages``). Panels that show no stage, or none with a definition, lose any old block.
    """
    model = copy.deepcopy(dashboard)
    for panel in panels(model):
        shown = panel_stages(panel, stages, funnel)
        pairs = [(stage, definitions[stage]) for stage in shown if stage in definitions]
        old = str(panel.get("description", ""))
        new = with_definitions(old, pairs)
        if new != old:
            panel["description"] = new
    return model


def apply_settings(dashboard: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``apply_definitions`` with the stages and definitions of ``settings``."""
    funnel = settings.funnel
    return apply_definitions(dashboard, funnel.definitions, funnel.all_stages, funnel=funnel.stages)


def dump(model: Mapping[str, Any]) -> str:
    """A dashboard model as the files keep it: two-space indent, key order, final newline."""
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def update_files(paths: Iterable[str | Path], settings: Settings) -> list[Path]:
    """Rewrite each dashboard file in place with the definitions; the files that changed."""
    changed = []
    for name in paths:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
            model = json.loads(text)
        except (OSError, ValueError) as exc:
            raise DashboardError(f"{path}: {exc}") from None
        if not isinstance(model, dict):
            raise DashboardError(f"{path}: not a dashboard (a JSON object)")
        try:
            updated = dump(apply_settings(model, settings))
        except DashboardError as exc:
            raise DashboardError(f"{path}: {exc}") from None
        if updated != text:
            try:
                path.write_text(updated, encoding="utf-8")
            except OSError as exc:
                raise DashboardError(f"{path}: {exc}") from None
            changed.append(path)
    return changed
