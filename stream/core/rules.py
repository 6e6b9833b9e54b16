"""The funnel's agreed rules, as plain values the core works with.

Built once from the settings (``stream.config.settings``) by ``rules_from_settings``; the core never
reads configuration itself, so tests and reports can build rules directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stream.core.calendar import BusinessCalendar
from stream.core.windows import WindowSpec, parse_window

DEFAULT_STAGES = ("visit", "lead", "mql", "sql", "opportunity", "customer")
DEFAULT_EXTRA_STAGES = ("contacted", "disqualified")
DEFAULT_FOLLOWUP_STAGES = ("contacted", "sql", "opportunity", "customer", "disqualified")
DAY = 86400.0
HOUR = 3600.0
# (label as written in the configuration, seconds): warnings before the SLA deadline
DEFAULT_WARN_BEFORE = (("4h", 4 * HOUR), ("1h", HOUR))


@dataclass(frozen=True, slots=True)
class FunnelRules:
    """Stages, follow-up SLA, windows and horizons that the core applies to every event."""

    stages: tuple[str, ...] = DEFAULT_STAGES
    extra_stages: tuple[str, ...] = DEFAULT_EXTRA_STAGES
    clock_starts_at: str = "lead"
    followup_stages: frozenset[str] = frozenset(DEFAULT_FOLLOWUP_STAGES)
    followup_within: float = DAY
    breach_grace: float = 0.0
    warn_before: tuple[tuple[str, float], ...] = DEFAULT_WARN_BEFORE
    calendar: BusinessCalendar | None = None
    windows: tuple[WindowSpec, ...] = field(
        default_factory=lambda: (parse_window("1h", "UTC"), parse_window("1d", "UTC"))
    )
    window_retention: float = 35 * DAY
    dedupe_horizon: float = 7 * DAY
    orphan_hold: float = 3600.0
    # stage -> how long a lead may sit in it before it is "stuck" (none by default)
    stuck_after: tuple[tuple[str, float], ...] = ()

    @property
    def all_stages(self) -> tuple[str, ...]:
        """Funnel stages in order, then the stages outside the order."""
        return self.stages + self.extra_stages

    @property
    def lead_stage(self) -> str:
        """The stage a ``lead_created`` event enters: the one after ``visit``."""
        return self.stages[1]

    @property
    def visit_stage(self) -> str:
        """The first funnel stage, entered by every distinct visit."""
        return self.stages[0]

    def deadline(self, clock_start: float) -> float:
        """When a lead whose clock started at ``clock_start`` breaches (deadline + grace)."""
        if self.calendar is None:
            due = clock_start + self.followup_within
        else:
            due = self.calendar.add_business_seconds(clock_start, self.followup_within)
            # When the SLA runs out exactly at a closing time, no business time passes until
            # the next opening: a follow-up before then still meets the SLA, so that opening
            # is the deadline (else a follow-up could be within the SLA and a breach at once).
            due = self.calendar.add_business_seconds(due, 0.0)
        return due + self.breach_grace

    def warning_times(self, clock_start: float) -> tuple[float, ...]:
        """For each of ``warn_before`` (in order), the instant a lead whose clock started at
        ``clock_start`` has that much SLA time left (business time when a calendar is set):
        it is *at risk* after it. Never before the clock start; the grace does not count."""
        return tuple([self.warning_time(clock_start, before) for _, before in self.warn_before])

    def warning_time(self, clock_start: float, before: float) -> float:
        """The instant a lead whose clock started at ``clock_start`` has ``before`` seconds of
        SLA time left (``warning_times``, for one of ``warn_before``)."""
        if self.calendar is None:
            return clock_start + max(0.0, self.followup_within - before)
        return self.calendar.add_business_seconds(
            clock_start, max(0.0, self.followup_within - before)
        )

    def stuck_at(self, stage: str, entered_at: float) -> float | None:
        """When a lead that entered ``stage`` at ``entered_at`` (and stays) becomes stuck: after
        ``stuck_after`` for that stage, on the SLA's clock (business time with a calendar);
        None when the stage has no such limit."""
        for name, limit in self.stuck_after:
            if name == stage:
                if self.calendar is None:
                    return entered_at + limit
                return self.calendar.add_business_seconds(entered_at, limit)
        return None

    def sla_latency(self, wall_seconds: float, business_seconds: float | None) -> float:
        """The latency the SLA is judged on: business time when a calendar is set."""
        return wall_seconds if business_seconds is None else business_seconds
