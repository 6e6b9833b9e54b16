"""Turn the settings into the core's ``FunnelRules`` (the one place that maps the two)."""

from __future__ import annotations

from stream.config.settings import Settings
from stream.core.calendar import BusinessCalendar
from stream.core.rules import FunnelRules
from stream.core.windows import parse_window


def rules_from_settings(settings: Settings) -> FunnelRules:
    """The funnel rules the worker, the reports and the tests apply, from ``settings``."""
    f, sla = settings.funnel, settings.sla
    hours = sla.business_hours
    calendar = (
        None
        if hours is None
        else BusinessCalendar.from_names(
            hours.time_zone, hours.days, hours.start, hours.end, hours.holidays
        )
    )
    return FunnelRules(
        stages=f.stages,
        extra_stages=f.extra_stages,
        clock_starts_at=sla.clock_starts_at,
        followup_stages=frozenset(sla.followup_stages),
        followup_within=sla.followup_within,
        breach_grace=sla.breach_grace,
        calendar=calendar,
        windows=tuple(parse_window(name, f.time_zone) for name in f.windows),
        window_retention=f.window_retention,
        dedupe_horizon=f.dedupe_horizon,
        orphan_hold=f.orphan_hold,
    )
