"""Cohorts: the leads that became leads in each week or month of the period, and the share of
them that reached each later stage within the conversion window (docs/reports.md)."""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from stream.config.settings import Settings
from stream.report.facts import Facts, Journey
from stream.report.period import Period, month_spans

__all__ = ["WEEKLY_UP_TO_DAYS", "Cohort", "Cohorts", "cohorts"]


@dataclass(frozen=True, slots=True)
class Cohort:
    """The leads that became leads in one week or month of the period, and how far they got.

    ``within_window[stage]`` counts those that reached ``stage`` (or a later funnel stage)
    within the conversion window of becoming a lead, ``so_far[stage]`` those that reached it
    by the report's clock. ``window_complete`` is False while the window of some of the
    cohort's leads has not ended by the clock (its within-window shares can still rise).
    """

    label: str
    start: float
    end: float
    leads: int
    within_window: Mapping[str, int]
    so_far: Mapping[str, int]
    window_complete: bool

    def share(self, reached: Mapping[str, int], stage: str) -> float | None:
        """``reached[stage]`` ÷ leads (None without leads)."""
        return reached[stage] / self.leads if self.leads else None


@dataclass(frozen=True, slots=True)
class Cohorts:
    """Cohort table: by week (periods up to 13 weeks) or by calendar month, local time."""

    unit: Literal["week", "month"]
    window_seconds: float
    stages: Sequence[str]  # the later funnel stages, after the lead stage
    rows: Sequence[Cohort]


WEEKLY_UP_TO_DAYS = 13 * 7


def _cohort_spans(
    period: Period,
) -> tuple[Literal["week", "month"], list[tuple[str, float, float]]]:
    """The cohorts' (label, start, end) within the period: calendar weeks from Monday, or
    calendar months, clipped to the period."""
    if round(period.days) > WEEKLY_UP_TO_DAYS:  # rounded: a DST change adds or takes 1h
        return "month", [(label, start, end) for label, start, end, _ in month_spans(period)]
    zone = ZoneInfo(period.time_zone)
    day = datetime.fromtimestamp(period.start, zone).date()
    monday = day - timedelta(days=day.weekday())
    spans = []
    while (first := datetime.combine(monday, time(0), zone).timestamp()) < period.end:
        monday += timedelta(days=7)
        after = datetime.combine(monday, time(0), zone).timestamp()
        label = (monday - timedelta(days=7)).isoformat()
        spans.append((label, max(first, period.start), min(after, period.end)))
    return "week", spans


def _reached(journey: Journey, stages: Sequence[str]) -> dict[str, float]:
    """When the lead reached each of ``stages`` (funnel order): its earliest first entry into
    that stage or a later one, so a skipped stage counts as passed."""
    entered = dict(journey)
    out: dict[str, float] = {}
    earliest = math.inf
    for stage in reversed(stages):
        earliest = min(earliest, entered.get(stage, math.inf))
        if earliest < math.inf:
            out[stage] = earliest
    return out


def cohorts(settings: Settings, facts: Facts, period: Period) -> Cohorts:
    """The cohorts of leads that became leads in the period, and how far they got."""
    stages = settings.funnel.stages
    lead_stage, later = stages[1], stages[2:]
    window = settings.report.conversion_window
    unit, spans = _cohort_spans(period)
    starts = [start for _, start, _ in spans]
    leads = [0] * len(spans)
    within: list[Counter[str]] = [Counter() for _ in spans]
    so_far: list[Counter[str]] = [Counter() for _ in spans]
    for journey in facts.journeys:
        created = dict(journey).get(lead_stage)
        if created is None or not period.start <= created < period.end:
            continue
        index = bisect.bisect_right(starts, created) - 1
        leads[index] += 1
        for stage, at in _reached(journey, later).items():
            if at <= facts.as_of:
                so_far[index][stage] += 1
                within[index][stage] += at - created <= window
    rows = [
        Cohort(
            label,
            start,
            end,
            leads[index],
            {stage: within[index][stage] for stage in later},
            {stage: so_far[index][stage] for stage in later},
            window_complete=end + window <= facts.as_of,
        )
        for index, (label, start, end) in enumerate(spans)
    ]
    return Cohorts(unit, window, later, rows)
