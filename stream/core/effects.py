"""What applying events did, for the metrics layer to count.

The core never touches Prometheus: it appends to an ``Effects`` accumulator, and the worker
turns that into counter and histogram updates (with bounded labels) once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["applied", "duplicate"]


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A lead's first follow-up, recorded the moment both its start and stop are known."""

    team: str
    wall_seconds: float
    business_seconds: float | None
    within_sla: bool
    clock_skew: bool
    owner: str | None = None  # the rep who owned the lead at the follow-up: never a label

    def __init__(
        self,
        team: str,
        wall_seconds: float,
        business_seconds: float | None,
        within_sla: bool,
        clock_skew: bool,
        owner: str | None = None,
    ) -> None:
        # Written out, not generated: stream/compiled.py ("__init__") says why.
        object.__setattr__(self, "team", team)
        object.__setattr__(self, "wall_seconds", wall_seconds)
        object.__setattr__(self, "business_seconds", business_seconds)
        object.__setattr__(self, "within_sla", within_sla)
        object.__setattr__(self, "clock_skew", clock_skew)
        object.__setattr__(self, "owner", owner)


@dataclass(slots=True)
class Effects:
    """Counts produced by applying events or advancing the clock, not yet exported."""

    entries: list[tuple[str, str]] = field(default_factory=list)  # (stage, source) of leads
    # Entries into the visit stage, per source: visits are most events, and a count per
    # source costs less than a pair per visit, to keep and to export (docs/performance.md, 47.).
    visits: dict[str, int] = field(default_factory=dict)
    visit_stage: str = "visit"  # the stage ``visits`` counts (FunnelRules.visit_stage)
    reentries: list[str] = field(default_factory=list)  # stage
    followups: list[FollowUp] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)  # team
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (team, warn_before label)
    # (from stage, to stage, seconds): funnel_stage_time_seconds (stream.core.stages)
    stage_times: list[tuple[str, str, float]] = field(default_factory=list)

    def clear(self) -> None:
        """Forget everything, to reuse the accumulator for the next batch."""
        self.entries.clear()
        self.visits.clear()
        self.reentries.clear()
        self.followups.clear()
        self.breaches.clear()
        self.warnings.clear()
        self.stage_times.clear()

    def __bool__(self) -> bool:
        return bool(
            self.entries
            or self.visits
            or self.reentries
            or self.followups
            or self.breaches
            or self.warnings
            or self.stage_times
        )

    def entry_counts(self) -> dict[tuple[str, str], int]:
        """Every stage entry counted per (stage, source): the leads' in the order first seen,
        then the visits' in the order first seen."""
        counts: dict[tuple[str, str], int] = {}
        for entry in self.entries:
            counts[entry] = counts.get(entry, 0) + 1
        stage = self.visit_stage
        for source, n in self.visits.items():
            key = (stage, source)
            counts[key] = counts.get(key, 0) + n
        return counts
