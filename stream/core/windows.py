"""Event-time tumbling windows aligned to the local clock of the business time zone.

A window is named by its width, a duration (``stream.core.durations``) such as ``15m``, ``1h``,
``1d`` or ``1w``; the name is also its metric label. Instants are float epoch seconds.

- Whole-day windows start at local midnight, so a ``1d`` window on a daylight-saving day
  lasts 23 h or 25 h. Multi-day windows are counted from Monday 0001-01-01, so ``1w`` (and
  ``7d``) windows start on local Monday midnight.
- Shorter windows must divide a day. They start where the local wall time, read with the
  UTC offset in force at that instant, is a multiple of the width. So ``1h`` windows in
  Asia/Kolkata (+05:30) start at half past the UTC hour, and the local hour repeated at a
  fall-back is two windows, one per UTC hour. When an offset change skips the grid (a
  ``2h`` window across a one-hour spring-forward), the window runs to the next local
  boundary and is longer than nominal.

Every instant belongs to exactly one window ``[start, next_window_start)``. The last two
windows looked up are cached on the spec, so the common call is two float comparisons.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stream.core.durations import parse_duration

__all__ = [
    "WindowSpec",
    "WindowsOfStage",
    "next_window_start",
    "parse_window",
    "previous_window_start",
    "window_start",
]

_DAY_SECONDS = 86_400
_MAX_DAYS = 366
_NO_WINDOW = (math.inf, -math.inf)  # holds no instant: start <= t < end is never true
_UTC_KEYS = frozenset({"UTC", "Etc/UTC"})
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A tumbling window: its name (a metric label such as "1h"), nominal width, time zone.

    ``seconds`` must divide a day or be a whole number of days (at most a year); the time
    zone must be known to ``zoneinfo``. Anything else raises ``ValueError``.
    """

    name: str
    seconds: float
    time_zone: str
    # Derived from the fields above: the zone, the width in whole days (0 below a day), and
    # the last two windows looked up (a cache read by ``window_start``).
    zone: ZoneInfo = field(init=False, repr=False, compare=False)
    whole_days: int = field(init=False, repr=False, compare=False)
    recent: list[tuple[float, float]] = field(init=False, repr=False, compare=False)
    utc: bool = field(init=False, repr=False, compare=False)  # the zone is UTC: no offset to read

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"window {self.name!r}: unknown time zone {self.time_zone!r}") from exc
        seconds = self.seconds
        if not (math.isfinite(seconds) and 0 < seconds <= _MAX_DAYS * _DAY_SECONDS):
            raise ValueError(f"window {self.name!r}: width must be above 0 and at most a year")
        if seconds % _DAY_SECONDS == 0:
            days = int(seconds // _DAY_SECONDS)
        elif _DAY_SECONDS % seconds == 0:
            days = 0
        else:
            raise ValueError(
                f"window {self.name!r}: width must divide a day or be a whole number of days"
            )
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "whole_days", days)
        object.__setattr__(self, "recent", [_NO_WINDOW, _NO_WINDOW])
        object.__setattr__(self, "utc", zone.key in _UTC_KEYS)


def parse_window(name: str, time_zone: str) -> WindowSpec:
    """The window whose width is the duration ``name`` (``parse_duration``), in ``time_zone``.

    Raises ``ValueError`` for a name that is not a duration ("1 h", "1y"), and for widths
    that are 0, neither divide a day nor are whole days ("7h", "36h"), or exceed a year.
    """
    try:
        seconds = parse_duration(name)
    except ValueError as exc:
        raise ValueError(f"window {name!r}: {exc}") from None
    return WindowSpec(name, seconds, time_zone)


def window_start(spec: WindowSpec, t: float) -> float:
    """Start (epoch seconds) of the window of ``spec`` that holds the instant ``t``."""
    recent = spec.recent
    start, end = recent[0]
    if start <= t < end:
        return start
    start, end = recent[1]
    if start <= t < end:
        return start
    return _lookup(spec, t)[0]


def next_window_start(spec: WindowSpec, start: float) -> float:
    """Start of the window right after the one that holds ``start`` (its exclusive end)."""
    return _bounds(spec, start)[1]


def previous_window_start(spec: WindowSpec, start: float) -> float:
    """Start of the window right before the one that holds ``start``.

    For daily windows this is local midnight of the previous day, across DST changes too.
    """
    first = _bounds(spec, start)[0]
    return _bounds(spec, math.nextafter(first, -math.inf))[0]


def _bounds(spec: WindowSpec, t: float) -> tuple[float, float]:
    recent = spec.recent
    for bounds in recent:
        if bounds[0] <= t < bounds[1]:
            return bounds
    return _lookup(spec, t)


def _lookup(spec: WindowSpec, t: float) -> tuple[float, float]:
    if spec.utc:
        bounds = _utc_bounds(spec, t)
    elif spec.whole_days:
        bounds = _day_bounds(spec.zone, spec.whole_days, t)
    else:
        bounds = _sub_day_bounds(spec.zone, spec.seconds, t)
    # Each slot holds a whole tuple, so a reader never sees a half-updated window.
    recent = spec.recent
    recent[1] = recent[0]
    recent[0] = bounds
    return bounds


def _utc_bounds(spec: WindowSpec, t: float) -> tuple[float, float]:
    """The bounds ``_day_bounds`` and ``_sub_day_bounds`` give in UTC, without asking the zone
    for an offset (they read it up to three times per window): the same floats, tested."""
    if not spec.whole_days:
        start = _floor(t, 0.0, spec.seconds)
        return start, start + spec.seconds
    days = spec.whole_days
    ordinal = int(t // _DAY_SECONDS) + _EPOCH_ORDINAL  # exact: float // is floored exactly
    first = ordinal - (ordinal - 1) % days
    start = float((first - _EPOCH_ORDINAL) * _DAY_SECONDS)
    return start, start + float(days * _DAY_SECONDS)


def _day_bounds(zone: ZoneInfo, days: int, t: float) -> tuple[float, float]:
    ordinal = datetime.fromtimestamp(t, zone).toordinal()
    # date.fromordinal(1) is a Monday, so this makes 7-day windows start on Mondays.
    first = ordinal - (ordinal - 1) % days
    start = _local_midnight(zone, first)
    end = _local_midnight(zone, first + days)
    # Where a fall-back crosses midnight, the local date can step back after midnight.
    while t >= end:
        first += days
        start, end = end, _local_midnight(zone, first + days)
    while t < start:
        first -= days
        start, end = _local_midnight(zone, first), start
    return start, end


@functools.lru_cache(maxsize=4096)
def _local_midnight(zone: ZoneInfo, ordinal: int) -> float:
    """First instant of a local date (a midnight inside a DST gap maps to the jump)."""
    return datetime.combine(date.fromordinal(ordinal), time(0), tzinfo=zone).timestamp()


def _sub_day_bounds(zone: ZoneInfo, width: float, t: float) -> tuple[float, float]:
    offset = _utc_offset(zone, t)
    start = _floor(t, offset, width)
    start_offset = _utc_offset(zone, start)
    if start_offset != offset:
        # An offset change lies in (start, t] and left no boundary on the new grid before t:
        # the window began on the old offset's grid, before the change.
        start = _floor(t, start_offset, width)
        while _utc_offset(zone, start) != start_offset:
            start -= width
        offset = start_offset
    end = start + width
    end_offset = _utc_offset(zone, end)
    if end_offset != offset:
        # The offset changes in (start, end]: the window ends at the new grid's first
        # boundary after the change.
        end = _floor(start, end_offset, width) + width
        while _utc_offset(zone, end) != end_offset:
            end += width
    return start, end


def _floor(t: float, offset: float, width: float) -> float:
    """Latest instant <= t whose local time (t + offset) is a multiple of width, exactly.

    Summing the small remainders instead of computing t + offset avoids a rounding step
    that could push the result past t.
    """
    return t - (t % width + offset % width) % width


def _utc_offset(zone: ZoneInfo, t: float) -> float:
    offset = datetime.fromtimestamp(t, zone).utcoffset()
    return 0.0 if offset is None else offset.total_seconds()


class WindowsOfStage:
    """The windows an entry into one stage at ``t`` counts in, ``(stage, window name, start)``
    one per window size, for the hot path: entries come mostly in time order, so the keys of
    the last instant are kept with the span of time they all hold, and reused within it."""

    __slots__ = ("_last", "_specs", "_stage")

    def __init__(self, stage: str, specs: tuple[WindowSpec, ...]) -> None:
        self._stage, self._specs = stage, specs
        self._last: tuple[float, float, tuple[tuple[str, str, float], ...]] = (0.0, 0.0, ())

    def at(self, t: float) -> tuple[tuple[str, str, float], ...]:
        """The keys of an entry at ``t`` (a method, not ``__call__``: compiled callers call a
        method directly, an instance's ``__call__`` through the generic call)."""
        start, end, keys = self._last
        if start <= t < end:
            return keys
        specs = self._specs
        starts = [window_start(spec, t) for spec in specs]
        end = min(next_window_start(spec, s) for spec, s in zip(specs, starts, strict=True))
        keys = tuple((self._stage, spec.name, s) for spec, s in zip(specs, starts, strict=True))
        self._last = (max(starts), end, keys)
        return keys
