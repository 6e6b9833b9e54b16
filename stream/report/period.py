"""The period a report covers: ``[start, end)`` from the command's dates, in the business time
zone, and the calendar months it touches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from stream.report.errors import ReportError

__all__ = ["Period", "month_spans", "parse_period"]


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)`` in epoch seconds, with the dates as given and the business time zone."""

    start: float
    end: float
    time_zone: str
    label_from: str
    label_to: str

    @property
    def days(self) -> float:
        """Length in days."""
        return (self.end - self.start) / 86400.0


def _instant(text: str, zone: ZoneInfo, option: str) -> float:
    """A date (local midnight) or an ISO date-time (local if it has no offset)."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), zone).timestamp()
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{option}: must be a date such as 2026-11-01, got {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).timestamp()


def parse_period(start: str, end: str, time_zone: str) -> Period:
    """The period ``[start, end)``: dates are local midnights in ``time_zone``."""
    zone = ZoneInfo(time_zone)
    period = Period(
        _instant(start, zone, "--from"), _instant(end, zone, "--to"), time_zone, start, end
    )
    if period.end <= period.start:
        raise ReportError(f"--to ({end}) must be later than --from ({start})")
    return period


def month_spans(period: Period) -> list[tuple[str, float, float, float]]:
    """The calendar months the period touches: (YYYY-MM, covered start, end, month length)."""
    zone = ZoneInfo(period.time_zone)
    local = datetime.fromtimestamp(period.start, zone)
    year, month = local.year, local.month
    spans: list[tuple[str, float, float, float]] = []
    while True:
        first = datetime(year, month, 1, tzinfo=zone).timestamp()
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        after = datetime(year, month, 1, tzinfo=zone).timestamp()
        if first >= period.end:
            return spans
        label = datetime.fromtimestamp(first, zone).strftime("%Y-%m")
        spans.append((label, max(first, period.start), min(after, period.end), after - first))
