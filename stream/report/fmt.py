"""Time and duration formats of the Markdown and HTML renderers.

Counts and shares come from :mod:`stream.formats`, shared with the live view.
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

from stream.core.durations import format_duration
from stream.formats import count, percent, seconds

__all__ = ["bucket_label", "count", "duration", "moment", "percent"]


def duration(value: float | None) -> str:
    """A duration in its largest unit (``42s``, ``12.5m``, ``3.0h``), ``-`` when unknown."""
    return seconds(value)


def moment(t: float, time_zone: str) -> str:
    """An instant in the business time zone, to the minute."""
    return datetime.fromtimestamp(t, ZoneInfo(time_zone)).strftime("%Y-%m-%d %H:%M %Z")


def bucket_label(bound: float) -> str:
    """The label of a latency bucket, from its upper bound (``≤ 5m``; ``more`` for +Inf)."""
    return "more" if math.isinf(bound) else f"≤ {format_duration(bound)}"
