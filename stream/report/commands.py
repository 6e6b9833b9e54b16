"""The bodies of ``funnel plan`` and ``funnel report``: settings in, text out.

The command line (``stream.cli.commands``) only parses arguments and prints what these return. Both
read the input topics back and recount them with the worker's core when they need measured
data; every failure is a one-line ``FunnelError``.
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

from stream.config.settings import Settings
from stream.errors import BrokerUnavailable
from stream.planning.plan import Gap, Measured, Plan, PlanError, bottleneck, north_star_plan
from stream.report.errors import ReportError
from stream.report.facts import Facts
from stream.report.fmt import count, moment
from stream.report.model import build_report, parse_period
from stream.report.render_html import render_html
from stream.report.render_json import gap_dict, measured_dict, plan_dict, report_dict
from stream.report.render_md import render_markdown
from stream.report.source import BROKER_WAIT_S, read_facts

__all__ = ["plan_output", "report_output", "write_output"]

# With every rate configured, measuring only adds the bottleneck: do not wait long for it.
OPTIONAL_BROKER_WAIT_S = 3.0


def _rate(rate: float) -> str:
    return f"{100 * rate:.3g} %"


def _measure(
    settings: Settings, days: float, needed: bool, now: float | None
) -> tuple[Measured | None, str | None]:
    """Entries over the trailing ``days`` (ending at the funnel's clock), or why there are none."""
    try:
        facts: Facts = read_facts(
            settings, now=now, broker_wait=BROKER_WAIT_S if needed else OPTIONAL_BROKER_WAIT_S
        )
    except BrokerUnavailable as exc:
        if needed:
            raise
        return None, f"nothing measured ({exc})"
    # Up to and including the clock (the latest event in event mode); no earlier than the
    # first entry the topics still hold, so that a short history is not read as a slow one.
    end = math.nextafter(facts.as_of, math.inf)
    start = end - days * 86400.0
    if facts.entries:
        start = max(start, facts.entries[0].at)
    measured = facts.measure(settings.funnel.stages, start, end)
    if measured.empty:
        return None, f"nothing measured: no stage entries in the last {days:g} days"
    return measured, None


def make_plan(
    settings: Settings, *, measured_days: float = 90.0, now: float | None = None
) -> tuple[Plan, Measured | None, Gap | None, str | None]:
    """The plan (missing rates measured), what was measured, the bottleneck, and a note."""
    north, stages = settings.north_star, settings.funnel.stages
    if not north.revenue_goal > 0:
        raise PlanError("north_star.revenue_goal is not set (0): there is no goal to plan for")
    if not measured_days > 0:
        raise PlanError(f"--measured-days must be > 0, got {measured_days:g}")
    missing = [stage for stage in stages[:-1] if stage not in north.conversion]
    try:
        measured, note = _measure(settings, measured_days, bool(missing), now)
    except BrokerUnavailable as exc:
        keys = ", ".join(f"north_star.conversion.{stage}" for stage in missing)
        raise PlanError(f"{keys} not configured and cannot be measured: {exc}") from None
    rates = dict(north.conversion)
    unmeasurable: list[str] = []
    for stage in missing:
        following = stages[stages.index(stage) + 1]
        rate = measured.rate(stage, following) if measured is not None else None
        if rate:
            rates[stage] = rate
        else:
            unmeasurable.append(stage)
    if unmeasurable:
        keys = ", ".join(f"north_star.conversion.{stage}" for stage in unmeasurable)
        raise PlanError(
            f"{keys} not configured and not measurable: no entries into the stage, or none "
            f"that moved on, in the last {measured_days:g} days"
        )
    plan = north_star_plan(stages, north, rates, frozenset(missing))
    gap = bottleneck(plan, measured) if measured is not None else None
    if measured is not None and gap is None:
        note = "no part of the funnel falls below the plan"
    return plan, measured, gap, note


def _plan_text(
    plan: Plan, measured: Measured | None, gap: Gap | None, note: str | None, zone: str
) -> str:
    customers = plan.per_period[plan.stages[-1]]
    lines = [
        f"North star: {count(plan.revenue_goal)} a {plan.period} at an average deal of "
        f"{count(plan.average_deal_size)} → {count(customers)} {plan.stages[-1]}s a {plan.period}",
        "",
    ]
    width = max(len(stage) for stage in plan.stages) + 2
    # columns as wide as their largest number, and always apart
    per_period = max(12, 2 + max(len(count(n)) for n in plan.per_period.values()))
    per_month = max(10, 2 + max(len(count(n)) for n in plan.per_month.values()))
    header = f"{'stage':<{width}}{'rate to next':>22}{'a ' + plan.period:>{per_period}}"
    lines.append(f"{header}{'a month':>{per_month}}")
    for stage in plan.stages:
        rate = plan.rates.get(stage)
        shown = (
            "-" if rate is None else _rate(rate) + (" (measured)" if stage in plan.measured else "")
        )
        lines.append(
            f"{stage:<{width}}{shown:>22}{count(plan.per_period[stage]):>{per_period}}"
            f"{count(plan.per_month[stage]):>{per_month}}"
        )
    lines += [
        "",
        f"Sales effort: {count(plan.followups_per_month)} follow-ups a month (one per "
        f"{plan.stages[1]}); {count(plan.reps_needed)} reps at "
        f"{plan.rep_capacity} {plan.stages[1]}s a month each.",
    ]
    if measured is not None and plan.measured:
        lines.append(
            f"Measured rates ({', '.join(sorted(plan.measured))}): first entries over "
            f"{measured.days:.1f} days, {moment(measured.start, zone)} → "
            f"{moment(measured.end, zone)}."
        )
    if gap is not None:
        lines.append(f"Bottleneck: {gap.describe()}.")
    if note is not None:
        lines.append(f"Bottleneck: {note}.")
    return "\n".join(lines) + "\n"


def plan_output(
    settings: Settings,
    *,
    measured_days: float = 90.0,
    as_json: bool = False,
    now: float | None = None,
) -> str:
    """What ``funnel plan`` prints: a table, or with ``as_json`` one JSON object."""
    plan, measured, gap, note = make_plan(settings, measured_days=measured_days, now=now)
    if not as_json:
        return _plan_text(plan, measured, gap, note, settings.funnel.time_zone)
    out: dict[str, Any] = plan_dict(plan)
    out["measured"] = None if measured is None else measured_dict(measured)
    out["bottleneck"] = None if gap is None else gap_dict(gap)
    out["note"] = note
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def read_owner_names(path: Path | None) -> dict[str, str]:
    """Owner id -> display name from ``[report] owner_names`` (a CSV: id, name per row).

    Read at render time only: the names never reach the worker, its state or its metrics.
    """
    if path is None:
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as file:
            return {row[0]: row[1] for row in csv.reader(file) if len(row) >= 2 and row[0]}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportError(f"[report] owner_names: cannot read {path}: {exc}") from None


def report_output(
    settings: Settings, start: str, end: str, fmt: str, *, now: float | None = None
) -> str:
    """What ``funnel report`` writes: the period's report as Markdown, HTML or JSON."""
    period = parse_period(start, end, settings.funnel.time_zone)
    facts = read_facts(settings, now=now)
    report = build_report(
        facts,
        settings,
        period,
        generated_at=time.time(),
        owner_names=read_owner_names(settings.report.owner_names),
    )
    if fmt == "json":
        return json.dumps(report_dict(report), indent=2, ensure_ascii=False) + "\n"
    if fmt == "html":
        return render_html(report)
    if fmt == "md":
        return render_markdown(report)
    raise ReportError(f"--format: must be md, html or json, got {fmt!r}")


def write_output(text: str, path: str) -> None:
    """Write ``text`` to ``path`` (UTF-8), or refuse with one line."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror or exc}") from None
