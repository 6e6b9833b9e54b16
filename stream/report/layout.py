"""The report's sections as headings, sentences and tables, shared by Markdown and HTML.

Both renderers walk the same ``Block`` list, so the two formats always say the same thing;
the HTML one adds a chart where a block names one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from stream.core.durations import format_duration
from stream.report.fmt import count, duration, moment, percent
from stream.report.model import Report, StepRow, TeamRow

__all__ = ["Block", "Table", "blocks"]

Chart = Literal["funnel", "latency", "deliveries", "cohorts"]


@dataclass(frozen=True, slots=True)
class Table:
    """A table of text cells; unless ``text``, columns after the first are numbers."""

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    text: bool = False


@dataclass(frozen=True, slots=True)
class Block:
    """A heading (level 1 to 3) with its sentences, an optional table and chart."""

    level: int
    title: str
    text: Sequence[str] = ()
    table: Table | None = None
    chart: Chart | None = None


def _head(report: Report) -> Block:
    p = report.period
    as_of = moment(report.as_of, p.time_zone) if report.as_of else "no events yet"
    clock = "event time (the latest event)" if report.clock == "event" else "wall clock"
    return Block(
        1,
        f"Funnel report {p.label_from} → {p.label_to}",
        (
            f"Period: from {moment(p.start, p.time_zone)} up to (not including) "
            f"{moment(p.end, p.time_zone)}, business time zone {p.time_zone}.",
            f"Recomputed exactly from the topics. Statuses as of {as_of} ({clock}); "
            f"generated {moment(report.generated_at, p.time_zone)}.",
        ),
    )


def _definitions(report: Report) -> Block:
    if not report.definitions:
        return Block(2, "Agreed definitions", ("No definitions are configured yet.",))
    stages = [row.stage for row in (*report.funnel, *report.extra)]
    rows = [[s, report.definitions[s]] for s in stages if s in report.definitions]
    return Block(2, "Agreed definitions", table=Table(["stage", "what it means"], rows, text=True))


def _marketing(report: Report) -> list[Block]:
    funnel_rows = [
        [row.stage, count(row.entries), percent(row.conversion)] for row in report.funnel
    ]
    funnel_rows += [[row.stage, count(row.entries), "(outside the order)"] for row in report.extra]
    top = report.sources[:8]
    source_rows = [
        [source, *(count(row.by_source.get(source, 0)) for row in report.funnel)] for source in top
    ]
    out = [
        Block(
            2,
            "Marketing → Sales",
            ("What marketing brought in during the period, and how it converted.",),
        ),
        Block(
            3,
            "Entries and conversion",
            (
                "First entries into each stage in the period; conversion is the next stage's "
                "entries ÷ this stage's entries.",
            ),
            Table(["stage", "entries", "conversion to next"], funnel_rows),
            "funnel",
        ),
        Block(
            3,
            "By source",
            () if len(report.sources) <= 8 else (f"The top 8 of {len(report.sources)} sources.",),
            Table(["source", *(row.stage for row in report.funnel)], source_rows),
        ),
    ]
    if report.commitments:
        rows = [
            [f"{c.stage} {month}", count(delivered), count(committed) if c.per_month else "-"]
            for c in report.commitments
            for month, delivered, committed in c.months
        ]
        text = [
            f"{c.stage}: {count(c.delivered)} delivered against "
            + (
                f"{count(c.committed)} committed ({percent(c.delivered / c.committed, 0)})."
                if c.per_month and c.committed
                else "no commitment (sla.marketing)."
            )
            for c in report.commitments
        ]
        out.append(
            Block(
                3,
                "Deliveries against commitment",
                (*text, "Commitments are pro rata for months the period covers in part."),
                Table(["stage and month", "delivered", "committed"], rows),
                "deliveries",
            )
        )
    return out


def _latency_cells(row: TeamRow, business: bool) -> list[str]:
    cells = [duration(row.wall.p50), duration(row.wall.p90), duration(row.wall.p95)]
    if business and row.business is not None:
        b = row.business
        cells += [duration(b.p50), duration(b.p90), duration(b.p95)]
    return cells


def _sales(report: Report) -> list[Block]:
    business = report.business_hours
    header = ["team", "leads", "follow-ups", "within SLA", "p50", "p90", "p95"]
    if business:
        header += ["business p50", "business p90", "business p95"]
    rows = [
        [
            row.team,
            count(row.leads),
            count(row.followups),
            percent(row.share_within_sla),
            *_latency_cells(row, business),
        ]
        for row in (*report.teams, report.total)
    ]
    judged = "business hours" if business else "wall-clock time"
    status_rows = [
        [row.team, count(row.breaches), count(row.open), count(row.overdue), count(row.clock_skew)]
        for row in (*report.teams, report.total)
    ]
    return [
        Block(
            2,
            "Sales → Marketing",
            ("What sales did with the leads whose follow-up clock started in the period.",),
        ),
        Block(
            3,
            "Follow-up latency and SLA",
            (
                f"SLA: first follow-up within {format_duration(report.sla_seconds)} of {judged}. "
                f"{percent(report.total.share_within_sla)} of "
                f"{count(report.total.followups)} follow-ups met it; percentiles are "
                "wall-clock time" + (", then business time." if business else "."),
            ),
            Table(header, rows),
            "latency",
        ),
        Block(
            3,
            "Breaches and leads still open",
            (
                f"{count(report.total.breaches)} leads breached the SLA; "
                f"{count(report.total.open)} are still waiting for a first follow-up, "
                f"{count(report.total.overdue)} of them past their deadline.",
            ),
            Table(["team", "breaches", "open", "overdue", "clock skew"], status_rows),
        ),
        _by_owner(report),
    ]


def _by_owner(report: Report) -> Block:
    rows = [
        [
            row.owner,
            row.team,
            count(row.leads),
            count(row.followups),
            percent(row.share_within_sla),
            duration(row.wall.p50),
            duration(row.wall.p90),
            count(row.breaches),
            count(row.open),
            count(row.overdue),
        ]
        for row in report.owners
    ]
    header = ["owner", "team", "leads", "follow-ups", "within SLA", "p50", "p90"]
    return Block(
        3,
        "Follow-up by owner",
        (
            "Each rep's record, worst first (most breaches, then most overdue, then the lowest "
            "share within the SLA). A follow-up is the rep's who made it, a lead still open the "
            "rep's who owns it now, a breach the rep's who owned the lead at its deadline.",
        ),
        Table([*header, "breaches", "open", "overdue"], rows),
    )


def _step_name(row: StepRow) -> str:
    return f"{row.from_stage} → {row.to_stage}" + (" (whole way)" if row.whole_way else "")


def _speed(report: Report) -> list[Block]:
    steps = [
        [
            _step_name(row),
            count(row.count),
            duration(row.p50),
            duration(row.p90),
            duration(row.mean),
        ]
        for row in report.steps
    ]
    cohorts = report.cohorts
    window = format_duration(cohorts.window_seconds)
    header = [cohorts.unit if cohorts.unit == "month" else "week of", "leads"]
    for stage in cohorts.stages:
        header += [f"{stage} in {window}", f"{stage} so far"]
    rows = []
    for cohort in cohorts.rows:
        cells = [cohort.label + ("" if cohort.window_complete else " *"), count(cohort.leads)]
        for stage in cohorts.stages:
            cells += [
                percent(cohort.share(cohort.within_window, stage)),
                percent(cohort.share(cohort.so_far, stage)),
            ]
        rows.append(cells)
    open_note = (
        ("* The window has not ended yet for some of these leads: the share can still rise.",)
        if any(not cohort.window_complete for cohort in cohorts.rows)
        else ()
    )
    unit = "calendar week (from Monday)" if cohorts.unit == "week" else "calendar month"
    return [
        Block(
            2,
            "How fast leads move",
            ("How long leads took from stage to stage, and how far each cohort got.",),
        ),
        Block(
            3,
            "Time between stages",
            (
                "Each step from a lead's first entry into a funnel stage to its first entry "
                "into the next funnel stage it reached (a skipped stage is skipped), and the "
                "whole way when it passed stages in between; a step counts in the period of "
                "its later entry. Exact from every lead's first entries; percentiles are "
                "nearest rank (p90: the smallest time with at least 90 % of steps at or "
                "below it).",
            ),
            Table(["step", "leads", "p50", "p90", "mean"], steps),
        ),
        Block(
            3,
            "Cohorts",
            (
                f"Leads by the {unit} they became leads in (business time zone), and the "
                f"share of them that reached each later stage within {window} of becoming a "
                "lead, and so far. A lead that skipped a stage has passed it.",
                *open_note,
            ),
            Table(header, rows),
            "cohorts",
        ),
    ]


def _north_star(report: Report) -> list[Block]:
    title = "North star: pace and where to push"
    if report.plan is None:
        return [Block(2, title, (f"No pace: {report.plan_note}.",))]
    plan = report.plan
    measured = sorted(plan.measured)
    text = [
        f"Target for the {report.elapsed_days:.1f} days of the period the data has reached, "
        f"from the plan of {count(plan.revenue_goal)} a {plan.period}."
    ]
    if measured:
        text.append(f"Rates measured in this period (not configured): {', '.join(measured)}.")
    if report.revenue is not None:
        won, target = report.revenue
        text.append(
            f"Revenue at the average deal size: {count(won)} against {count(target)} "
            f"({percent(won / target if target else None, 0)})."
        )
    rows = [
        [row.stage, count(row.actual), count(row.target), percent(row.share, 0)]
        for row in report.pace
    ]
    gap = report.bottleneck
    push = (
        f"Bottleneck: {gap.describe()}."
        if gap is not None
        else "No part of the funnel falls below the plan."
    )
    return [
        Block(2, title, text, Table(["stage", "entries", "target", "pace"], rows)),
        Block(3, "Where to push", (push,)),
    ]


def blocks(report: Report) -> list[Block]:
    """The report, top to bottom."""
    tail = Block(
        3,
        "Data quality",
        (f"{count(report.rejected)} messages on the input topics were rejected (any time).",),
    )
    return [
        _head(report),
        _definitions(report),
        *_marketing(report),
        *_sales(report),
        *_speed(report),
        *_north_star(report),
        tail,
    ]
