"""The reverse funnel: from the revenue goal back to the monthly effort per stage (pure).

The arithmetic of interface.md: customers = ceil(revenue goal / average deal size); going up
the funnel, each stage = ceil(next stage / conversion rate of this stage to the next); per
month = ceil(per period / months in the period), for each stage separately; follow-ups per
month = leads per month; reps needed = ceil(leads per month / rep capacity).

Every step is exact: amounts and rates are taken as the decimals they are written as (a
``Fraction`` of their shortest ``repr``), so 21 SQLs at 35 % need 60 MQLs, not the 61
that float division (60.00000000000001) rounded up would give.

``find_gaps`` and ``bottleneck`` compare the plan with measured entries: the volume at the
top of the funnel and the conversion of every step, each as a share of what the plan needs.
The product of those shares is the measured customers' share of the target, so the lowest
one is where the funnel loses the most against the north star.

``lead_times`` says how far ahead of the last stage each stage's entries happen: the sum of
the measured p50 of each consecutive step on the way (docs/reports.md says why the sum).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from stream.errors import FunnelError

if TYPE_CHECKING:
    from stream.config.settings import NorthStarSettings

__all__ = [
    "DAYS_PER_MONTH",
    "MONTHS_IN",
    "Gap",
    "LeadTimes",
    "Measured",
    "Plan",
    "PlanError",
    "bottleneck",
    "find_gaps",
    "lead_times",
    "reverse_funnel",
]

MONTHS_IN: Mapping[str, int] = {"month": 1, "quarter": 3, "year": 12}
DAYS_PER_MONTH = 365.25 / 12  # the average month: measured volumes are scaled with it


class PlanError(FunnelError):
    """The north star cannot be turned into a plan (no goal, or a rate is missing)."""


def _exact(value: float) -> Fraction:
    """``value`` as the decimal it is written as (``0.025`` is exactly 1/40)."""
    return Fraction(repr(float(value)))


@dataclass(frozen=True, slots=True)
class Plan:
    """The monthly effort per stage that the revenue goal needs, and the sales effort."""

    period: str
    stages: tuple[str, ...]
    revenue_goal: float
    average_deal_size: float
    rates: Mapping[str, float]  # stage -> rate to the next stage (all but the last)
    measured: frozenset[str]  # the stages whose rate was measured, not configured
    per_period: Mapping[str, int]
    per_month: Mapping[str, int]
    rep_capacity: int
    followups_per_month: int
    reps_needed: int

    @property
    def months(self) -> int:
        """Months in the goal's period."""
        return MONTHS_IN[self.period]


def reverse_funnel(
    stages: Sequence[str],
    *,
    revenue_goal: float,
    average_deal_size: float,
    period: str,
    rates: Mapping[str, float],
    rep_capacity: int,
    measured: frozenset[str] = frozenset(),
) -> Plan:
    """The plan for ``stages`` (funnel order, the lead stage second) and the north star.

    ``rates`` must give a rate in (0, 1] for every stage but the last; ``measured`` names
    those that were measured rather than configured (only reported). Raises ``PlanError``
    (one line naming the key) when the goal is not set or a rate is missing or invalid.
    """
    if period not in MONTHS_IN:
        raise PlanError(f"north_star.period: must be one of {', '.join(MONTHS_IN)}")
    if not revenue_goal > 0:
        raise PlanError("north_star.revenue_goal is not set: there is no goal to plan for")
    if not average_deal_size > 0:
        raise PlanError("north_star.average_deal_size must be > 0 to plan for a revenue goal")
    if rep_capacity < 1:
        raise PlanError("north_star.rep_capacity_leads_per_month must be ≥ 1")
    missing = [stage for stage in stages[:-1] if stage not in rates]
    if missing:
        keys = ", ".join(f"north_star.conversion.{stage}" for stage in missing)
        raise PlanError(f"no conversion rate for {keys}")
    for stage in stages[:-1]:
        if not 0 < rates[stage] <= 1:
            raise PlanError(
                f"north_star.conversion.{stage}: must be in (0, 1], got {rates[stage]:g}"
            )
    per_period: dict[str, int] = {}
    need = math.ceil(_exact(revenue_goal) / _exact(average_deal_size))
    per_period[stages[-1]] = need
    for stage in reversed(stages[:-1]):
        need = math.ceil(need / _exact(rates[stage]))
        per_period[stage] = need
    per_period = {stage: per_period[stage] for stage in stages}
    months = MONTHS_IN[period]
    per_month = {stage: -(-n // months) for stage, n in per_period.items()}
    leads = per_month[stages[1]]
    return Plan(
        period=period,
        stages=tuple(stages),
        revenue_goal=revenue_goal,
        average_deal_size=average_deal_size,
        rates={stage: rates[stage] for stage in stages[:-1]},
        measured=frozenset(measured) & frozenset(stages[:-1]),
        per_period=per_period,
        per_month=per_month,
        rep_capacity=rep_capacity,
        followups_per_month=leads,
        reps_needed=-(-leads // rep_capacity),
    )


@dataclass(frozen=True, slots=True)
class Measured:
    """First entries per stage counted over a span of event time of ``days`` days."""

    entries: Mapping[str, int]
    days: float
    start: float = 0.0  # the span, in epoch seconds (for display)
    end: float = 0.0

    def per_month(self, stage: str) -> float:
        """Entries into ``stage`` per average month (365.25 / 12 days)."""
        if self.days <= 0:
            return 0.0
        return self.entries.get(stage, 0) * DAYS_PER_MONTH / self.days

    def rate(self, stage: str, next_stage: str) -> float | None:
        """Entries into ``next_stage`` per entry into ``stage`` (at most 1); None if none."""
        entered = self.entries.get(stage, 0)
        if not entered:
            return None
        return min(1.0, self.entries.get(next_stage, 0) / entered)

    @property
    def empty(self) -> bool:
        """True when nothing entered any stage in the span."""
        return not any(self.entries.values())


@dataclass(frozen=True, slots=True)
class Gap:
    """How far one part of the funnel is from what the plan needs, per month.

    ``kind`` is ``volume`` for the top stage (measured entries against needed entries) and
    ``conversion`` for every other stage (the measured rate from ``from_stage`` against the
    planned one). ``attainment`` is measured ÷ needed; ``shortfall_per_month`` is how many
    entries into ``stage`` a month this part loses: for a conversion, what the planned
    volume of ``from_stage`` yields at the measured rate, short of the target.
    """

    stage: str
    kind: Literal["volume", "conversion"]
    from_stage: str | None
    needed_per_month: int
    measured_per_month: float
    needed_rate: float | None
    measured_rate: float | None
    attainment: float
    shortfall_per_month: int

    def describe(self) -> str:
        """One sentence with the numbers, e.g. for ``funnel plan`` and the report."""
        share = f"{100 * self.attainment:.0f} % of plan"
        if self.kind == "volume":
            return (
                f"{self.stage}: {self.measured_per_month:,.0f} entries a month against the "
                f"{self.needed_per_month:,} needed ({share}; {self.shortfall_per_month:,} short)"
            )
        assert self.measured_rate is not None and self.needed_rate is not None
        return (
            f"{self.stage}: {self.from_stage} → {self.stage} converts "
            f"{100 * self.measured_rate:.1f} % against the {100 * self.needed_rate:.1f} % "
            f"the plan needs ({share}); even at the planned {self.from_stage} volume that is "
            f"{self.shortfall_per_month:,} {self.stage} entries a month short of the "
            f"{self.needed_per_month:,} needed (measured: {self.measured_per_month:,.0f} a month)"
        )


def north_star_plan(
    stages: Sequence[str],
    north: NorthStarSettings,
    rates: Mapping[str, float],
    measured: frozenset[str],
) -> Plan:
    """``reverse_funnel`` for the configured north star, with ``rates`` for the conversions
    (configured or, for the stages in ``measured``, measured)."""
    return reverse_funnel(
        stages,
        revenue_goal=north.revenue_goal,
        average_deal_size=north.average_deal_size,
        period=north.period,
        rates=rates,
        rep_capacity=north.rep_capacity_leads_per_month,
        measured=measured,
    )


def find_gaps(plan: Plan, measured: Measured) -> list[Gap]:
    """The top stage's volume and every step's conversion, measured against the plan."""
    if measured.empty:
        return []
    stages = plan.stages
    top = stages[0]
    volume = measured.per_month(top)
    gaps = [
        Gap(
            stage=top,
            kind="volume",
            from_stage=None,
            needed_per_month=plan.per_month[top],
            measured_per_month=volume,
            needed_rate=None,
            measured_rate=None,
            attainment=volume / plan.per_month[top],
            shortfall_per_month=max(0, math.ceil(plan.per_month[top] - volume - 1e-9)),
        )
    ]
    for stage, following in itertools.pairwise(stages):
        rate = measured.rate(stage, following)
        if rate is None:
            continue
        needed = plan.rates[stage]
        yields = plan.per_month[stage] * rate
        gaps.append(
            Gap(
                stage=following,
                kind="conversion",
                from_stage=stage,
                needed_per_month=plan.per_month[following],
                measured_per_month=measured.per_month(following),
                needed_rate=needed,
                measured_rate=rate,
                attainment=rate / needed,
                shortfall_per_month=max(0, math.ceil(plan.per_month[following] - yields - 1e-9)),
            )
        )
    return gaps


def bottleneck(plan: Plan, measured: Measured) -> Gap | None:
    """The part of the funnel furthest below the plan, or None if none falls short."""
    short = [gap for gap in find_gaps(plan, measured) if gap.attainment < 1]
    return min(short, key=lambda gap: gap.attainment, default=None)


@dataclass(frozen=True, slots=True)
class LeadTimes:
    """How long before its entry into the last stage each stage's entry happens.

    ``steps`` holds the measured (count, p50 seconds) of each consecutive step from the lead
    stage on; ``seconds[stage]`` is the sum of the p50s of the steps from ``stage`` to the
    last stage, 0 for the last stage, None when a step on the way was not measured (and for
    the visit stage: a visit is not yet a lead, so visit → lead is not a step).
    """

    to_stage: str
    steps: Mapping[tuple[str, str], tuple[int, float]]
    seconds: Mapping[str, float | None]
    # The measured (count, p50) of the whole way (lead → last stage), shown for comparison.
    whole_way: tuple[int, float] | None = None


def lead_times(
    stages: Sequence[str],
    steps: Mapping[tuple[str, str], tuple[int, float]],
    whole_way: tuple[int, float] | None = None,
) -> LeadTimes:
    """The lead time of every stage to the last one, from the measured ``steps`` (count, p50)
    of the consecutive funnel steps from the lead stage (``stages[1]``) on."""
    seconds: dict[str, float | None] = {stages[-1]: 0.0}
    ahead: float | None = 0.0
    for stage, following in reversed(list(itertools.pairwise(stages[1:]))):
        measured = steps.get((stage, following))
        ahead = None if ahead is None or measured is None else ahead + measured[1]
        seconds[stage] = ahead
    seconds[stages[0]] = None if len(stages) > 1 else 0.0
    return LeadTimes(
        stages[-1], dict(steps), {stage: seconds[stage] for stage in stages}, whole_way
    )
