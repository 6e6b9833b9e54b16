"""Turn the settings into the core's ``FunnelRules`` (the one place that maps the two)."""

from __future__ import annotations

import datetime

from stream.config.settings import Settings
from stream.core.calendar import BusinessCalendar
from stream.core.durations import parse_duration
from stream.core.rules import FunnelRules
from stream.core.windows import parse_window

# The years whose public holidays a calendar holds, around the year it is built in: the
# reports look back, and a worker may run past New Year.
HOLIDAY_YEARS_BACK = 5
HOLIDAY_YEARS_AHEAD = 2


def rules_from_settings(settings: Settings, *, today: datetime.date | None = None) -> FunnelRules:
    """The funnel rules the worker, the reports and the tests apply, from ``settings``.

    A business-hours calendar's closed dates are resolved here, once: the listed holidays
    and the public holidays of ``holidays_country`` from ``HOLIDAY_YEARS_BACK`` years before
    ``today`` (the system date) to ``HOLIDAY_YEARS_AHEAD`` after.
    """
    f, sla = settings.funnel, settings.sla
    hours = sla.business_hours
    calendar = None
    if hours is not None:
        year = (today or datetime.date.today()).year
        years = range(year - HOLIDAY_YEARS_BACK, year + HOLIDAY_YEARS_AHEAD + 1)
        calendar = BusinessCalendar.from_names(
            hours.time_zone, hours.days, hours.start, hours.end, hours.closed_dates(years)
        )
    return FunnelRules(
        stages=f.stages,
        extra_stages=f.extra_stages,
        clock_starts_at=sla.clock_starts_at,
        followup_stages=frozenset(sla.followup_stages),
        followup_within=sla.followup_within,
        breach_grace=sla.breach_grace,
        warn_before=tuple((text, parse_duration(text)) for text in sla.warn_before),
        calendar=calendar,
        windows=tuple(parse_window(name, f.time_zone) for name in f.windows),
        window_retention=f.window_retention,
        dedupe_horizon=f.dedupe_horizon,
        orphan_hold=f.orphan_hold,
        stuck_after=tuple(f.stuck_after.items()),
    )
