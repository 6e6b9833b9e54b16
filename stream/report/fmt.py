"""Number, time and duration formats shared by the Markdown and HTML renderers."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

from stream.durations import format_duration
from stream.scrape import format_seconds

__all__ = ["bucket_label", "count", "duration", "moment", "percent"]


def count(n: float) -> str:
    """A count with thousands separators (``182,880``); fractions are rounded."""
    return f"{n:,.0f}"


def percent(ratio: float | None, digits: int = 1) -> str:
    """A ratio as a percentage (``35.0 %``), ``-`` when unknown."""
    return "-" if ratio is None else f"{100 * ratio:.{digits}f} %"


def duration(seconds: float | None) -> str:
    """A duration in its largest unit (``42s``, ``12.5m``, ``3.0h``), ``-`` when unknown."""
    return format_seconds(seconds)


def moment(t: float, time_zone: str) -> str:
    """An instant in the business time zone, to the minute."""
    return datetime.fromtimestamp(t, ZoneInfo(time_zone)).strftime("%Y-%m-%d %H:%M %Z")


def bucket_label(bound: float) -> str:
    """The label of a latency bucket, from its upper bound (``≤ 5m``; ``more`` for +Inf)."""
    return "more" if math.isinf(bound) else f"≤ {format_duration(bound)}"
