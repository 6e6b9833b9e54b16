"""The report and the plan as JSON-ready dictionaries (``--json``, ``--format json``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from stream.planning.plan import Gap, LeadTimes, Measured, Plan
from stream.report.cohorts import Cohort, Cohorts
from stream.report.latency import Latency
from stream.report.model import Report, StepRow, TeamRow

__all__ = [
    "cohorts_dict",
    "gap_dict",
    "lead_times_dict",
    "measured_dict",
    "plan_dict",
    "report_dict",
    "step_dict",
]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


def plan_dict(plan: Plan) -> dict[str, Any]:
    """The object of interface.md (period, per_period, per_month, reps_needed) and more."""
    return {
        "period": plan.period,
        "months_in_period": plan.months,
        "revenue_goal": plan.revenue_goal,
        "average_deal_size": plan.average_deal_size,
        "per_period": dict(plan.per_period),
        "per_month": dict(plan.per_month),
        "reps_needed": plan.reps_needed,
        "followups_per_month": plan.followups_per_month,
        "rep_capacity_leads_per_month": plan.rep_capacity,
        "rates": {stage: _round(rate) for stage, rate in plan.rates.items()},
        "measured_rates": {
            stage: _round(rate) for stage, rate in plan.rates.items() if stage in plan.measured
        },
    }


def lead_times_dict(
    times: LeadTimes, stages: Sequence[str], month: tuple[str, str, float, float]
) -> dict[str, Any]:
    """The lead times of ``funnel plan --json``: per stage the seconds ahead of the last stage
    and, for the customers of ``month`` (label, name, start, end), when its entries are needed
    (``[needed_from, needed_before)``); the measured steps they are summed from."""
    label, _, start, end = month
    last = times.to_stage
    whole = times.whole_way
    return {
        "basis": "sum of the measured p50 of each step on the way",
        "to_stage": last,
        "for_month": label,
        "stages": {
            stage: {
                "seconds": ahead,
                "needed_from": None if ahead is None else _iso(start - ahead),
                "needed_before": None if ahead is None else _iso(end - ahead),
            }
            for stage in stages
            for ahead in [times.seconds.get(stage)]
        },
        "steps": [
            {"from_stage": a, "to_stage": b, "count": n, "p50_seconds": p50}
            for (a, b), (n, p50) in times.steps.items()
        ],
        "whole_way": None
        if whole is None
        else {
            "from_stage": stages[1],
            "to_stage": last,
            "count": whole[0],
            "p50_seconds": whole[1],
        },
    }


def gap_dict(gap: Gap) -> dict[str, Any]:
    """A gap (the bottleneck) with its numbers and its sentence."""
    return {
        "stage": gap.stage,
        "kind": gap.kind,
        "from_stage": gap.from_stage,
        "needed_per_month": gap.needed_per_month,
        "measured_per_month": _round(gap.measured_per_month, 2),
        "needed_rate": _round(gap.needed_rate),
        "measured_rate": _round(gap.measured_rate),
        "attainment": _round(gap.attainment, 4),
        "shortfall_per_month": gap.shortfall_per_month,
        "summary": gap.describe(),
    }


def measured_dict(measured: Measured) -> dict[str, Any]:
    """What was measured: the span and the first entries per stage in it."""
    return {
        "from": _iso(measured.start),
        "to": _iso(measured.end),
        "days": _round(measured.days, 3),
        "entries": dict(measured.entries),
    }


def _latency(latency: Latency | None) -> dict[str, float | None] | None:
    if latency is None:
        return None
    return {"p50": latency.p50, "p90": latency.p90, "p95": latency.p95}


def _team(row: TeamRow) -> dict[str, Any]:
    return {
        "leads": row.leads,
        "followups": row.followups,
        "within_sla": row.within_sla,
        "share_within_sla": _round(row.share_within_sla, 4),
        "wall_seconds": _latency(row.wall),
        "business_seconds": _latency(row.business),
        "breaches": row.breaches,
        "open": row.open,
        "overdue": row.overdue,
        "clock_skew": row.clock_skew,
    }


def step_dict(row: StepRow) -> dict[str, Any]:
    """One step between stages: how many, p50, p90 (nearest rank) and mean, in seconds."""
    return {
        "from_stage": row.from_stage,
        "to_stage": row.to_stage,
        "whole_way": row.whole_way,
        "count": row.count,
        "p50_seconds": row.p50,
        "p90_seconds": row.p90,
        "mean_seconds": _round(row.mean, 3),
    }


def _reached(cohort: Cohort, reached: Mapping[str, int]) -> dict[str, Any]:
    return {
        stage: {"leads": n, "share": _round(cohort.share(reached, stage), 4)}
        for stage, n in reached.items()
    }


def cohorts_dict(cohorts: Cohorts) -> dict[str, Any]:
    """The cohort table: per week or month, leads and the share reaching each later stage."""
    return {
        "unit": cohorts.unit,
        "conversion_window_seconds": cohorts.window_seconds,
        "stages": list(cohorts.stages),
        "rows": [
            {
                "cohort": cohort.label,
                "start": _iso(cohort.start),
                "end": _iso(cohort.end),
                "leads": cohort.leads,
                "window_complete": cohort.window_complete,
                "within_window": _reached(cohort, cohort.within_window),
                "so_far": _reached(cohort, cohort.so_far),
            }
            for cohort in cohorts.rows
        ],
    }


def report_dict(report: Report) -> dict[str, Any]:
    """Every number of the report, keyed by stage, team and source."""
    p = report.period
    north: dict[str, Any] = {
        "plan": None if report.plan is None else plan_dict(report.plan),
        "note": report.plan_note,
        "elapsed_days": _round(report.elapsed_days, 3),
        "pace": {
            row.stage: {
                "actual": row.actual,
                "target": _round(row.target, 2),
                "share": _round(row.share, 4),
            }
            for row in report.pace
        },
        "revenue": None
        if report.revenue is None
        else {"won": report.revenue[0], "target": _round(report.revenue[1], 2)},
    }
    return {
        "period": {
            "from": p.label_from,
            "to": p.label_to,
            "start": _iso(p.start),
            "end": _iso(p.end),
            "time_zone": p.time_zone,
            "days": _round(p.days, 4),
        },
        "generated_at": _iso(report.generated_at),
        "as_of": _iso(report.as_of) if report.as_of else None,
        "clock": report.clock,
        "definitions": dict(report.definitions),
        "entries": report.entries,
        "stages": {
            row.stage: {
                "entries": row.entries,
                "conversion_to_next": _round(row.conversion, 4),
                "by_source": dict(row.by_source),
            }
            for row in (*report.funnel, *report.extra)
        },
        "sources": list(report.sources),
        "sla_seconds": report.sla_seconds,
        "business_hours": report.business_hours,
        "followups": {row.team: _team(row) for row in report.teams},
        "followups_total": _team(report.total),
        "followups_by_owner": [
            {
                "owner": row.owner,
                "team": row.team,
                "leads": row.leads,
                "followups": row.followups,
                "within_sla": row.within_sla,
                "share_within_sla": _round(row.share_within_sla, 4),
                "wall_seconds": _latency(row.wall),
                "breaches": row.breaches,
                "open": row.open,
                "overdue": row.overdue,
            }
            for row in report.owners
        ],
        "latency_distribution": [
            {"le": "+Inf" if math.isinf(bound) else bound, "count": n}
            for bound, n in report.latency_buckets
        ],
        "marketing": {
            c.stage: {
                "per_month": c.per_month,
                "delivered": c.delivered,
                "committed": _round(c.committed, 2),
                "months": [
                    {"month": month, "delivered": delivered, "committed": _round(committed, 2)}
                    for month, delivered, committed in c.months
                ],
            }
            for c in report.commitments
        },
        "stage_times": [step_dict(row) for row in report.steps],
        "cohorts": cohorts_dict(report.cohorts),
        "north_star": north,
        "bottleneck": None if report.bottleneck is None else gap_dict(report.bottleneck),
        "rejected_messages": report.rejected,
    }
