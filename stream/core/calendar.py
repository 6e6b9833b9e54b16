"""Business-hours calendar: how much opening time lies between two instants.

The follow-up SLA may run on business time instead of wall time. A calendar names a time
zone, the working weekdays, the daily opening hours (local wall-clock times) and holidays
(local dates). Instants are float epoch seconds (UTC) throughout, as on the hot path.

Each day's opening interval is computed once from local times converted through
``zoneinfo`` and cached, so a 09:00-18:00 day lasts 9 h, except when a daylight-saving
jump falls inside the opening hours (then it lasts 8 h or 10 h). Both operations walk the
calendar day by day, so their cost grows with the number of days spanned, not the seconds.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DAY_NAMES", "BusinessCalendar", "Weekday"]

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
"""A weekday as written in the configuration."""

DAY_NAMES: tuple[Weekday, ...] = get_args(Weekday)
"""Weekday names accepted by :meth:`BusinessCalendar.from_names`, index 0 = Monday."""

_MIDNIGHT = time(0)


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Opening hours in a time zone: working weekdays, daily hours and holidays.

    ``days`` holds weekday numbers (0 = Monday .. 6 = Sunday); ``opens`` and ``closes`` are
    naive local wall-clock times, with ``closes == time(0)`` meaning the end of the day
    (midnight after), so ``opens=time(0), closes=time(0)`` is open all day. ``holidays`` are
    local dates that contribute no opening time. A calendar without working days, with an
    unknown time zone or with ``closes`` not after ``opens`` raises ``ValueError``.
    """

    time_zone: str
    days: frozenset[int]
    opens: time
    closes: time
    holidays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _holiday_ordinals: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", _load_zone(self.time_zone))
        if not self.days:
            raise ValueError("business calendar has no working days")
        if not self.days <= frozenset(range(7)):
            raise ValueError(f"weekday numbers must be 0 (Monday) to 6 (Sunday): {self.days}")
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ValueError("opening hours are local wall-clock times, without tzinfo")
        if self.closes != _MIDNIGHT and self.closes <= self.opens:
            raise ValueError(f"closing time {self.closes} is not after opening time {self.opens}")
        object.__setattr__(
            self, "_holiday_ordinals", frozenset(day.toordinal() for day in self.holidays)
        )

    @classmethod
    def from_names(
        cls,
        time_zone: str,
        days: Iterable[str],
        start: time,
        end: time,
        holidays: Iterable[date] = (),
    ) -> BusinessCalendar:
        """Build a calendar from weekday names as written in the configuration ("mon".."sun").

        Names are case-insensitive three-letter abbreviations; an unknown name raises
        ``ValueError`` naming it.
        """
        numbers: set[int] = set()
        for name in days:
            try:
                numbers.add(DAY_NAMES.index(name.lower()))
            except ValueError:
                raise ValueError(
                    f"unknown weekday {name!r}: expected one of {', '.join(DAY_NAMES)}"
                ) from None
        return cls(time_zone, frozenset(numbers), start, end, frozenset(holidays))

    def business_seconds(self, start: float, end: float) -> float:
        """Seconds of opening time between two instants; 0 when ``end <= start``."""
        if not end > start:
            return 0.0
        total = 0.0
        for ordinal in range(self._local_ordinal(start), self._local_ordinal(end) + 1):
            interval = self._opening(ordinal)
            if interval is None:
                continue
            low = interval[0] if interval[0] > start else start
            high = interval[1] if interval[1] < end else end
            if high > low:
                total += high - low
        return total

    def add_business_seconds(self, start: float, seconds: float) -> float:
        """The earliest instant at which ``seconds`` of opening time have elapsed after ``start``.

        Outside opening hours the clock starts at the next opening (so adding 0 seconds
        there gives that opening). A deadline that uses up a day's remaining time exactly
        falls on that day's closing time. Negative or non-finite ``seconds`` raise
        ``ValueError``.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"business seconds must be finite and not negative: {seconds}")
        remaining = seconds
        ordinal = self._local_ordinal(start)
        while True:
            interval = self._opening(ordinal)
            if interval is not None:
                low = interval[0] if interval[0] > start else start
                if interval[1] > low:
                    available = interval[1] - low
                    if remaining <= available:
                        return low + remaining
                    remaining -= available
            ordinal += 1

    def _opening(self, ordinal: int) -> tuple[float, float] | None:
        # date.fromordinal(1) is a Monday, so (ordinal - 1) % 7 is the weekday number.
        if (ordinal - 1) % 7 not in self.days or ordinal in self._holiday_ordinals:
            return None
        return _opening_interval(self._zone, self.opens, self.closes, ordinal)

    def _local_ordinal(self, instant: float) -> int:
        return datetime.fromtimestamp(instant, self._zone).toordinal()


@functools.lru_cache(maxsize=8192)
def _opening_interval(
    zone: ZoneInfo, opens: time, closes: time, ordinal: int
) -> tuple[float, float]:
    """Opening and closing instants of one local day, from local times through the zone."""
    day = date.fromordinal(ordinal)
    opening = datetime.combine(day, opens, tzinfo=zone).timestamp()
    if closes == _MIDNIGHT:
        closing = datetime.combine(day + timedelta(days=1), _MIDNIGHT, tzinfo=zone).timestamp()
    else:
        closing = datetime.combine(day, closes, tzinfo=zone).timestamp()
    # A local time inside a spring-forward gap can map past the closing time: empty day.
    return opening, max(opening, closing)


def _load_zone(key: str) -> ZoneInfo:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {key!r}") from exc
