"""The period report as plain values, computed from the facts of a recount (pure).

``build_report`` takes the facts (``stream.report.facts``), the settings and a ``Period``
(``stream.report.period``) and returns a ``Report`` that the Markdown, HTML and JSON renderers
only format; the cohort table is built in ``stream.report.cohorts``, the owners table in
``stream.report.owners``. What counts in a period is decided here and explained in
docs/reports.md: a stage entry by the time of its first entry, a lead's follow-up outcome by
the time its follow-up clock started, a step between stages by the time of its later entry, a
cohort by the time its leads became leads.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stream.config.settings import Settings
from stream.core.effects import FollowUp
from stream.core.leads import DEFAULT_TEAM, UNKNOWN_SOURCE
from stream.observability.buckets import LATENCY_BUCKETS
from stream.observability.labels import OTHER
from stream.planning.plan import (
    DAYS_PER_MONTH,
    Gap,
    Measured,
    Plan,
    PlanError,
    bottleneck,
    north_star_plan,
)
from stream.report.cohorts import Cohorts, cohorts
from stream.report.facts import Facts, LeadOutcome
from stream.report.latency import Latency
from stream.report.owners import OwnerRow, owner_rows
from stream.report.period import Period, month_spans

__all__ = [
    "COMMITTED_STAGES",
    "Commitment",
    "Pace",
    "Report",
    "StageRow",
    "StepRow",
    "TeamRow",
    "build_report",
    "step_rows",
]

COMMITTED_STAGES = ("mql", "sql")  # [sla.marketing] mql_per_month, sql_per_month
ALL_TEAMS = "all teams"


@dataclass(frozen=True, slots=True)
class StageRow:
    """First entries into one stage in the period, by source, and conversion to the next."""

    stage: str
    entries: int
    by_source: Mapping[str, int]
    conversion: float | None  # entries of the next funnel stage ÷ these; None if n/a


@dataclass(frozen=True, slots=True)
class TeamRow:
    """One team's follow-up record for the leads whose clock started in the period."""

    team: str
    leads: int
    followups: int
    within_sla: int
    wall: Latency
    business: Latency | None
    breaches: int
    open: int
    overdue: int
    clock_skew: int

    @property
    def share_within_sla(self) -> float | None:
        """Follow-ups within the SLA ÷ follow-ups (None without any)."""
        return self.within_sla / self.followups if self.followups else None


@dataclass(frozen=True, slots=True)
class StepRow:
    """The time leads took for one step between stages, exact, over the steps of a span.

    The steps of ``funnel_stage_time_seconds``: consecutive funnel stages a lead reached
    (a skipped stage skipped) and, through stages in between, the whole way (lead → the last
    stage). Percentiles are nearest rank, as ``Latency``'s.
    """

    from_stage: str
    to_stage: str
    count: int
    p50: float | None
    p90: float | None
    mean: float | None
    whole_way: bool = False  # lead → the last stage, with the stages in between


def step_rows(stages: Sequence[str], facts: Facts, start: float, end: float) -> list[StepRow]:
    """Every step whose later entry is in ``[start, end)``: the consecutive steps from the lead
    stage on and the whole way always (possibly with no leads), then the skips that occurred,
    in funnel order, the whole way last."""
    times = facts.stage_times(start, end)
    # The whole way is a step of its own only with at least one stage in between.
    whole = facts.whole_way if len(stages) > 3 else None
    main = [*itertools.pairwise(stages[1:]), *([whole] if whole else [])]
    steps = list(dict.fromkeys([*main, *times]))
    order = {stage: index for index, stage in enumerate(stages)}

    def place(step: tuple[str, str]) -> tuple[bool, int, int]:
        return (step == whole, order.get(step[0], -1), order.get(step[1], -1))

    rows = []
    for step in sorted(steps, key=place):
        values = times.get(step, [])
        latency = Latency.of(values)
        mean = math.fsum(values) / len(values) if values else None
        rows.append(StepRow(*step, len(values), latency.p50, latency.p90, mean, step == whole))
    return rows


@dataclass(frozen=True, slots=True)
class Commitment:
    """Marketing's deliveries into one stage against its monthly commitment, per month."""

    stage: str
    per_month: int
    months: Sequence[tuple[str, int, float]]  # (YYYY-MM, delivered, committed pro rata)

    @property
    def delivered(self) -> int:
        """Entries in the whole period."""
        return sum(delivered for _, delivered, _ in self.months)

    @property
    def committed(self) -> float:
        """The commitment for the period, pro rata for partly covered months."""
        return sum(committed for _, _, committed in self.months)


@dataclass(frozen=True, slots=True)
class Pace:
    """Entries in the elapsed part of the period against the north star's target for it."""

    stage: str
    actual: int
    target: float

    @property
    def share(self) -> float | None:
        """Actual ÷ target."""
        return self.actual / self.target if self.target else None


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the report shows; the renderers only format it."""

    period: Period
    generated_at: float
    as_of: float
    clock: str
    definitions: Mapping[str, str]
    funnel: Sequence[StageRow]
    extra: Sequence[StageRow]
    sources: Sequence[str]
    teams: Sequence[TeamRow]
    total: TeamRow
    owners: Sequence[OwnerRow]
    sla_seconds: float
    business_hours: bool
    latency_buckets: Sequence[tuple[float, int]]  # (upper bound, count); the last is +inf
    commitments: Sequence[Commitment]
    elapsed_days: float
    plan: Plan | None
    plan_note: str | None
    pace: Sequence[Pace]
    revenue: tuple[float, float] | None  # (won so far at the average deal size, target)
    bottleneck: Gap | None
    rejected: int
    steps: Sequence[StepRow]
    cohorts: Cohorts

    @property
    def entries(self) -> dict[str, int]:
        """First entries per stage in the period, every configured stage."""
        return {row.stage: row.entries for row in (*self.funnel, *self.extra)}


def _bounded(allow: Sequence[str] | None, always: str) -> dict[str, str]:
    """A lookup that keeps allowed values (and ``always``) and maps the rest to ``other``."""
    return {} if allow is None else dict.fromkeys((*allow, always), "")


def _label(value: str, allowed: Mapping[str, str]) -> str:
    return value if not allowed or value in allowed else OTHER


def _stage_rows(
    settings: Settings, facts: Facts, period: Period
) -> tuple[list[StageRow], list[StageRow], list[str]]:
    allowed = _bounded(settings.labels.source, UNKNOWN_SOURCE)
    counts: dict[str, Counter[str]] = {s: Counter() for s in settings.funnel.all_stages}
    for stage, counter in counts.items():
        # Sources in the order of their first entry in the period, as a pass over the
        # entries in time order would meet them.
        for source, n in facts.entries.by_source(stage, period.start, period.end):
            counter[_label(source, allowed)] += n
    stages = settings.funnel.stages
    totals = {stage: sum(c.values()) for stage, c in counts.items()}
    funnel = [
        StageRow(
            stage,
            totals[stage],
            dict(counts[stage].most_common()),
            totals[following] / totals[stage] if following and totals[stage] else None,
        )
        for stage, following in zip(stages, (*stages[1:], None), strict=True)
    ]
    extra = [
        StageRow(s, totals[s], dict(counts[s].most_common()), None)
        for s in settings.funnel.extra_stages
    ]
    everywhere: Counter[str] = Counter()
    for counter in counts.values():
        everywhere.update(counter)
    return funnel, extra, [source for source, _ in everywhere.most_common()]


def _team_row(team: str, leads: Sequence[LeadOutcome], business_hours: bool) -> TeamRow:
    followups: list[FollowUp] = [lead.followup for lead in leads if lead.followup is not None]
    business = [f.business_seconds for f in followups if f.business_seconds is not None]
    return TeamRow(
        team=team,
        leads=len(leads),
        followups=len(followups),
        within_sla=sum(f.within_sla for f in followups),
        wall=Latency.of(f.wall_seconds for f in followups),
        business=Latency.of(business) if business_hours else None,
        breaches=sum(lead.breached for lead in leads),
        open=sum(lead.open for lead in leads),
        overdue=sum(lead.overdue for lead in leads),
        clock_skew=sum(f.clock_skew for f in followups),
    )


def _teams(
    settings: Settings, facts: Facts, period: Period
) -> tuple[list[TeamRow], TeamRow, list[tuple[float, int]]]:
    allowed = _bounded(settings.labels.team, DEFAULT_TEAM)
    business_hours = settings.sla.business_hours is not None
    by_team: dict[str, list[LeadOutcome]] = defaultdict(list)
    in_period = [lead for lead in facts.leads if period.start <= lead.clock_start < period.end]
    for lead in in_period:
        by_team[_label(lead.team, allowed)].append(lead)
    teams = [_team_row(team, leads, business_hours) for team, leads in sorted(by_team.items())]
    buckets = Counter[float]()
    for lead in in_period:
        if (f := lead.followup) is not None:
            judged = f.wall_seconds if f.business_seconds is None else f.business_seconds
            buckets[next((b for b in LATENCY_BUCKETS if judged <= b), math.inf)] += 1
    histogram = [(float(b), buckets[float(b)]) for b in (*LATENCY_BUCKETS, math.inf)]
    return teams, _team_row(ALL_TEAMS, in_period, business_hours), histogram


def _commitments(settings: Settings, facts: Facts, period: Period) -> list[Commitment]:
    marketing = settings.sla.marketing
    per_month = {"mql": marketing.mql_per_month, "sql": marketing.sql_per_month}
    spans = month_spans(period)
    out: list[Commitment] = []
    for stage in COMMITTED_STAGES:
        if stage not in settings.funnel.stages:
            continue
        months = [
            (
                label,
                facts.entries.count(stage, start, end),
                per_month[stage] * (end - start) / length,
            )
            for label, start, end, length in spans
        ]
        out.append(Commitment(stage, per_month[stage], months))
    return out


def _plan(settings: Settings, measured: Measured) -> tuple[Plan | None, str | None]:
    """The north star's plan, with missing rates measured over the period."""
    north = settings.north_star
    if not north.revenue_goal > 0:
        return None, "no north star is set (north_star.revenue_goal = 0)"
    stages = settings.funnel.stages
    rates = dict(north.conversion)
    measured_stages: set[str] = set()
    for stage, following in itertools.pairwise(stages):
        if stage not in rates and (rate := measured.rate(stage, following)):
            rates[stage] = rate
            measured_stages.add(stage)
    try:
        plan = north_star_plan(stages, north, rates, frozenset(measured_stages))
    except PlanError as exc:
        return None, f"{exc} (and it cannot be measured in this period)"
    return plan, None


def build_report(
    facts: Facts,
    settings: Settings,
    period: Period,
    *,
    generated_at: float,
    owner_names: Mapping[str, str] | None = None,
) -> Report:
    """The report of ``period`` from ``facts`` (a recount of the topics)."""
    funnel, extra, sources = _stage_rows(settings, facts, period)
    teams, total, histogram = _teams(settings, facts, period)
    # Pace and the bottleneck look at the part of the period the data has reached.
    elapsed_end = min(period.end, max(period.start, facts.as_of))
    measured = facts.measure(settings.funnel.stages, period.start, elapsed_end)
    plan, note = _plan(settings, measured)
    elapsed_months = measured.days / DAYS_PER_MONTH
    pace: list[Pace] = []
    revenue = None
    if plan is not None:
        pace = [
            Pace(row.stage, measured.entries[row.stage], plan.per_month[row.stage] * elapsed_months)
            for row in funnel
        ]
        won = measured.entries[plan.stages[-1]] * plan.average_deal_size
        revenue = (won, plan.revenue_goal * elapsed_months / plan.months)
    return Report(
        period=period,
        generated_at=generated_at,
        as_of=facts.as_of,
        clock=settings.clock,
        definitions=dict(settings.funnel.definitions),
        funnel=funnel,
        extra=extra,
        sources=sources,
        teams=teams,
        total=total,
        owners=owner_rows(
            [lead for lead in facts.leads if period.start <= lead.clock_start < period.end],
            owner_names,
        ),
        sla_seconds=settings.sla.followup_within,
        business_hours=settings.sla.business_hours is not None,
        latency_buckets=histogram,
        commitments=_commitments(settings, facts, period),
        elapsed_days=measured.days,
        plan=plan,
        plan_note=note,
        pace=pace,
        revenue=revenue,
        bottleneck=None if plan is None else bottleneck(plan, measured),
        rejected=facts.rejected,
        steps=step_rows(settings.funnel.stages, facts, period.start, period.end),
        cohorts=cohorts(settings, facts, period),
    )
