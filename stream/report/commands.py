"""The bodies of ``funnel plan`` and ``funnel report``: settings in, text out.

The command line (``stream.cli.commands``) only parses arguments and prints what these return. Both
read the input topics back and recount them with the worker's core when they need measured
data; every failure is a one-line ``FunnelError``.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from stream.config.settings import Settings
from stream.errors import BrokerUnavailable
from stream.planning.plan import (
    Gap,
    LeadTimes,
    Measured,
    Plan,
    PlanError,
    bottleneck,
    lead_times,
    north_star_plan,
)
from stream.report.errors import ReportError
from stream.report.facts import Facts
from stream.report.fmt import count, duration, moment
from stream.report.model import build_report, step_rows
from stream.report.period import parse_period
from stream.report.render_html import render_html
from stream.report.render_json import (
    gap_dict,
    lead_times_dict,
    measured_dict,
    plan_dict,
    report_dict,
)
from stream.report.render_md import render_markdown
from stream.report.source import read_facts

__all__ = ["PlanOutcome", "make_plan", "plan_output", "report_output", "write_output"]

# With every rate configured, measuring only adds the bottleneck: do not wait long for it.
OPTIONAL_BROKER_WAIT_S = 3.0


def _rate(rate: float) -> str:
    return f"{100 * rate:.3g} %"


class _Measurement(NamedTuple):
    measured: Measured | None
    lead_times: LeadTimes | None
    as_of: float
    note: str | None


def _measure(settings: Settings, days: float, needed: bool, now: float | None) -> _Measurement:
    """Entries and step times over the trailing ``days`` (ending at the funnel's clock), or
    why there are none."""
    try:
        facts: Facts = read_facts(
            settings,
            now=now,
            broker_wait=(
                settings.kafka.connect_timeout
                if needed
                else min(OPTIONAL_BROKER_WAIT_S, settings.kafka.connect_timeout)
            ),
        )
    except BrokerUnavailable as exc:
        if needed:
            raise
        return _Measurement(None, None, 0.0, f"nothing measured ({exc})")
    # Up to and including the clock (the latest event in event mode); no earlier than the
    # first entry the topics still hold, so that a short history is not read as a slow one.
    end = math.nextafter(facts.as_of, math.inf)
    start = end - days * 86400.0
    earliest = facts.entries.earliest()
    if earliest is not None:
        start = max(start, earliest)
    stages = settings.funnel.stages
    measured = facts.measure(stages, start, end)
    if measured.empty:
        note = f"nothing measured: no stage entries in the last {days:g} days"
        return _Measurement(None, None, facts.as_of, note)
    rows = step_rows(stages, facts, start, end)
    steps = {
        (row.from_stage, row.to_stage): (row.count, row.p50)
        for row in rows
        if row.p50 is not None and not row.whole_way
    }
    whole = next(
        ((row.count, row.p50) for row in rows if row.whole_way and row.p50 is not None), None
    )
    return _Measurement(measured, lead_times(stages, steps, whole), facts.as_of, None)


class PlanOutcome(NamedTuple):
    """The plan (missing rates measured), what was measured, the bottleneck, a note, the
    measured lead times and the clock they were measured at."""

    plan: Plan
    measured: Measured | None
    gap: Gap | None
    note: str | None
    lead_times: LeadTimes | None
    as_of: float


def make_plan(
    settings: Settings, *, measured_days: float = 90.0, now: float | None = None
) -> PlanOutcome:
    """The plan (missing rates measured), what was measured, the bottleneck, a note and the
    lead times."""
    north, stages = settings.north_star, settings.funnel.stages
    if not north.revenue_goal > 0:
        raise PlanError("north_star.revenue_goal is not set (0): there is no goal to plan for")
    if not measured_days > 0:
        raise PlanError(f"--measured-days must be > 0, got {measured_days:g}")
    missing = [stage for stage in stages[:-1] if stage not in north.conversion]
    try:
        measurement = _measure(settings, measured_days, bool(missing), now)
    except BrokerUnavailable as exc:
        keys = ", ".join(f"north_star.conversion.{stage}" for stage in missing)
        raise PlanError(f"{keys} not configured and cannot be measured: {exc}") from None
    measured, note = measurement.measured, measurement.note
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
    return PlanOutcome(plan, measured, gap, note, measurement.lead_times, measurement.as_of)


class Month(NamedTuple):
    """A calendar month of the business time zone: ``[start, end)`` in epoch seconds."""

    label: str  # YYYY-MM
    name: str  # "March 2027"
    start: float
    end: float


def month_after(t: float, time_zone: str) -> Month:
    """The calendar month after the one holding ``t``, in ``time_zone``."""
    zone = ZoneInfo(time_zone)
    local = datetime.fromtimestamp(t, zone)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    first = datetime(year, month, 1, tzinfo=zone)
    after = datetime(year + 1, 1, 1, tzinfo=zone) if month == 12 else first.replace(month=month + 1)
    return Month(
        first.strftime("%Y-%m"), first.strftime("%B %Y"), first.timestamp(), after.timestamp()
    )


def around(t: float, time_zone: str, year: int) -> str:
    """``t`` as a person says it: early (1-10), mid (11-20) or late (21-) month, with the year
    only when it is not ``year``."""
    local = datetime.fromtimestamp(t, ZoneInfo(time_zone))
    part = "early" if local.day <= 10 else "mid" if local.day <= 20 else "late"
    month = local.strftime("%B") + ("" if local.year == year else f" {local.year}")
    return f"{part}-{month}" if part == "mid" else f"{part} {month}"


def _missing_step(stage: str, times: LeadTimes, stages: tuple[str, ...]) -> str:
    if stage == stages[0]:
        return f"not measured: a {stage} is not yet a {stages[1]}"
    on_the_way = itertools.pairwise(stages[stages.index(stage) :])
    gap = next((step for step in on_the_way if step not in times.steps), None)
    return "not measured" if gap is None else f"no {gap[0]} → {gap[1]} step measured"


def _lead_time_lines(
    times: LeadTimes, stages: tuple[str, ...], month: Month, zone: str, days: float
) -> list[str]:
    year = datetime.fromtimestamp(month.start, ZoneInfo(zone)).year
    last = times.to_stage
    width = max(len(stage) for stage in stages) + 2
    lines = [
        "",
        f"Lead times to {last}: how far ahead of the {last} each stage's entries happen",
        f"(the sum of the measured p50 of every step on the way, over {days:.1f} days).",
        f"{'stage':<{width}}{'lead time':>10}   for {month.name}'s {last}s, needed",
    ]
    for stage in stages:
        ahead = times.seconds.get(stage)
        if ahead is None:
            lines.append(f"{stage:<{width}}{'-':>10}   ({_missing_step(stage, times, stages)})")
            continue
        by = around(month.end - ahead - 1, zone, year)
        since = around(month.start - ahead, zone, year)
        lines.append(
            f"{stage:<{width}}{duration(ahead) if ahead else '0':>10}   by {by} (from {since})"
        )
    if times.whole_way is not None:
        n, p50 = times.whole_way
        lines.append(
            f"Measured {stages[1]} → {last} directly: p50 {duration(p50)} over {count(n)} {last}s."
        )
    return lines


def _plan_text(outcome: PlanOutcome, zone: str) -> str:
    plan, measured, gap, note = outcome.plan, outcome.measured, outcome.gap, outcome.note
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
    if outcome.lead_times is not None and measured is not None:
        month = month_after(outcome.as_of, zone)
        lines += _lead_time_lines(outcome.lead_times, plan.stages, month, zone, measured.days)
    return "\n".join(lines) + "\n"


def plan_output(
    settings: Settings,
    *,
    measured_days: float = 90.0,
    as_json: bool = False,
    now: float | None = None,
) -> str:
    """What ``funnel plan`` prints: a table, or with ``as_json`` one JSON object."""
    outcome = make_plan(settings, measured_days=measured_days, now=now)
    zone = settings.funnel.time_zone
    if not as_json:
        return _plan_text(outcome, zone)
    measured, gap = outcome.measured, outcome.gap
    out: dict[str, Any] = plan_dict(outcome.plan)
    out["measured"] = None if measured is None else measured_dict(measured)
    out["bottleneck"] = None if gap is None else gap_dict(gap)
    out["note"] = outcome.note
    times = outcome.lead_times
    out["lead_times"] = (
        None
        if times is None
        else lead_times_dict(times, outcome.plan.stages, month_after(outcome.as_of, zone))
    )
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
