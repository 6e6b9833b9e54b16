"""What the gauges show, summed over the views of the partitions a worker owns.

The views (``stream.core.view.PartitionView``) keep their own counts as events are applied
or rebuilt; these functions add them up for the metrics and the tests, the same live and
after a rebuild.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from stream.core.rules import FunnelRules
from stream.core.view import PartitionView, WindowKey
from stream.core.windows import previous_window_start, window_start


@dataclass(frozen=True, slots=True)
class FollowupGauge:
    """Open leads of one team: how many, how many overdue, the oldest clock start, and how
    many are at risk per warning (``warn_before`` label; labels with none are left out)."""

    awaiting: int
    overdue: int
    oldest_clock_start: float | None
    at_risk: dict[str, int] = field(default_factory=dict)


def window_entries(
    views: Iterable[PartitionView], rules: FunnelRules, watermark: float
) -> dict[tuple[str, str, str], int]:
    """Entries per (stage, window, period) for the current and previous windows.

    The current window is the one that holds ``watermark`` (the clock, or the highest event
    time in ``event`` mode); every configured stage and window is present, with 0 where
    nothing entered.
    """
    totals: Counter[WindowKey] = Counter()
    for view in views:
        totals.update(view.window_counts)
    out: dict[tuple[str, str, str], int] = {}
    for spec in rules.windows:
        current = window_start(spec, watermark)
        previous = previous_window_start(spec, current)
        for stage in rules.all_stages:
            out[(stage, spec.name, "current")] = totals[(stage, spec.name, current)]
            out[(stage, spec.name, "previous")] = totals[(stage, spec.name, previous)]
    return out


def stage_gauges(views: Iterable[PartitionView], rules: FunnelRules) -> dict[str, tuple[int, int]]:
    """Per funnel-order stage: (leads whose current stage it is, of those stuck); every
    stage is present."""
    in_stage: Counter[str] = Counter()
    stuck: Counter[str] = Counter()
    for view in views:
        in_stage.update(view.in_stage)
        stuck.update(view.stuck)
    return {stage: (in_stage[stage], stuck[stage]) for stage in rules.stages}


def followup_gauges(views: Iterable[PartitionView], rules: FunnelRules) -> dict[str, FollowupGauge]:
    """Awaiting, overdue and oldest open lead per team with open leads."""
    views = list(views)
    awaiting: Counter[str] = Counter()
    overdue: Counter[str] = Counter()
    at_risk: Counter[tuple[str, str]] = Counter()
    for view in views:
        awaiting.update(view.awaiting)
        overdue.update(view.overdue)
        at_risk.update(view.at_risk)
    labels = [label for label, _ in rules.warn_before]
    out: dict[str, FollowupGauge] = {}
    # Teams whose open leads are all followed up have no row, live or rebuilt alike.
    for team in {t for t in awaiting.keys() | overdue.keys() if awaiting[t] or overdue[t]}:
        starts = [s for v in views if (s := v.oldest_open(team)) is not None]
        out[team] = FollowupGauge(
            awaiting[team],
            overdue[team],
            min(starts, default=None),
            {label: n for label in labels if (n := at_risk[(team, label)])},
        )
    return out
