"""Tumbling windows: hand-computed DST and half-hour-zone cases, and tiling properties."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.core.windows import (
    WindowSpec,
    _day_bounds,
    _sub_day_bounds,
    _utc_bounds,
    next_window_start,
    parse_window,
    previous_window_start,
    window_start,
)

HOUR = 3600.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def local(t: float, time_zone: str) -> datetime:
    return datetime.fromtimestamp(t, ZoneInfo(time_zone))


class TestParseWindow:
    @pytest.mark.parametrize(
        ("name", "seconds"),
        [
            ("1m", 60.0),
            ("15m", 900.0),
            ("30m", 1800.0),
            ("1h", 3600.0),
            ("2h", 7200.0),
            ("24h", 86_400.0),
            ("1d", 86_400.0),
            ("7d", 604_800.0),
            ("1w", 604_800.0),
            ("90s", 90.0),
            ("1h30m", 5_400.0),
            ("1.5h", 5_400.0),
        ],
    )
    def test_accepts_any_duration_that_tiles_a_day(self, name: str, seconds: float) -> None:
        assert parse_window(name, "UTC") == WindowSpec(name, seconds, "UTC")

    @pytest.mark.parametrize("name", ["", "h", "1", "-1h", "1 h", "1y", "1hh", "daily"])
    def test_refuses_what_is_not_a_duration(self, name: str) -> None:
        with pytest.raises(ValueError, match="must be a duration"):
            parse_window(name, "UTC")

    @pytest.mark.parametrize("name", ["0s", "0h"])
    def test_refuses_an_empty_width(self, name: str) -> None:
        with pytest.raises(ValueError, match="above 0"):
            parse_window(name, "UTC")

    @pytest.mark.parametrize("name", ["7m", "7h", "25h", "36h"])
    def test_refuses_widths_that_do_not_tile_a_day(self, name: str) -> None:
        with pytest.raises(ValueError, match="divide a day"):
            parse_window(name, "UTC")

    def test_refuses_windows_longer_than_a_year(self) -> None:
        with pytest.raises(ValueError, match="at most a year"):
            parse_window("53w", "UTC")

    def test_refuses_unknown_time_zone(self) -> None:
        with pytest.raises(ValueError, match="Mars/Olympus"):
            parse_window("1h", "Mars/Olympus")


class TestDailyWindows:
    MADRID_DAY = parse_window("1d", "Europe/Madrid")

    def test_start_at_local_midnight(self) -> None:
        # 2026-01-15 12:00 UTC is 13:00 CET; the day began at 00:00 CET = 23:00 UTC on the 14th.
        assert window_start(self.MADRID_DAY, utc(2026, 1, 15, 12)) == utc(2026, 1, 14, 23)
        # 2026-07-15 22:30 UTC is already 00:30 CEST on the 16th.
        assert window_start(self.MADRID_DAY, utc(2026, 7, 15, 22, 30)) == utc(2026, 7, 15, 22)

    def test_spring_forward_day_lasts_23_hours(self) -> None:
        start = window_start(self.MADRID_DAY, utc(2026, 3, 29, 12))
        assert start == utc(2026, 3, 28, 23)  # 00:00 CET
        end = next_window_start(self.MADRID_DAY, start)
        assert end == utc(2026, 3, 29, 22)  # 00:00 CEST on the 30th
        assert end - start == 23 * HOUR
        assert previous_window_start(self.MADRID_DAY, end) == start

    def test_fall_back_day_lasts_25_hours(self) -> None:
        start = window_start(self.MADRID_DAY, utc(2026, 10, 25, 12))
        assert start == utc(2026, 10, 24, 22)  # 00:00 CEST
        end = next_window_start(self.MADRID_DAY, start)
        assert end == utc(2026, 10, 25, 23)  # 00:00 CET on the 26th
        assert end - start == 25 * HOUR
        # The day before the change: previous local midnight, still CEST, 24 h earlier.
        assert previous_window_start(self.MADRID_DAY, start) == utc(2026, 10, 23, 22)

    def test_weeks_start_on_local_monday_midnight(self) -> None:
        week = parse_window("1w", "Europe/Madrid")
        # Sun 2026-03-29 12:00 UTC; the week began Mon 23 00:00 CET = Sun 22 23:00 UTC.
        start = window_start(week, utc(2026, 3, 29, 12))
        assert start == utc(2026, 3, 22, 23)
        # It ends Mon 30 00:00 CEST = Sun 29 22:00 UTC: 167 h.
        assert next_window_start(week, start) == utc(2026, 3, 29, 22)
        assert window_start(parse_window("7d", "Europe/Madrid"), utc(2026, 3, 29, 12)) == start


class TestSubDayWindows:
    def test_hours_in_a_half_hour_zone_start_on_local_hours(self) -> None:
        hour = parse_window("1h", "Asia/Kolkata")
        # 10:10 UTC is 15:40 IST; the window began 15:00 IST = 09:30 UTC.
        start = window_start(hour, utc(2026, 1, 1, 10, 10))
        assert start == utc(2026, 1, 1, 9, 30)
        assert next_window_start(hour, start) == utc(2026, 1, 1, 10, 30)
        assert local(start, "Asia/Kolkata").minute == 0

    def test_hours_match_utc_hours_in_whole_hour_zones(self) -> None:
        hour = parse_window("1h", "Europe/Madrid")
        assert window_start(hour, utc(2026, 5, 5, 7, 59, 59)) == utc(2026, 5, 5, 7)

    def test_repeated_fall_back_hour_is_two_windows(self) -> None:
        hour = parse_window("1h", "Europe/Madrid")
        # 00:30 UTC = 02:30 CEST and 01:30 UTC = 02:30 CET: same wall time, two windows.
        first = window_start(hour, utc(2026, 10, 25, 0, 30))
        second = window_start(hour, utc(2026, 10, 25, 1, 30))
        assert (first, second) == (utc(2026, 10, 25, 0), utc(2026, 10, 25, 1))
        assert next_window_start(hour, first) == second

    def test_two_hour_window_across_spring_forward_runs_to_the_next_local_boundary(self) -> None:
        two = parse_window("2h", "Europe/Madrid")
        # Local 00:00 CET (23:00 UTC) to 04:00 CEST (02:00 UTC): 02:00 local never happens.
        start = window_start(two, utc(2026, 3, 29, 1, 30))
        assert start == utc(2026, 3, 28, 23)
        assert next_window_start(two, start) == utc(2026, 3, 29, 2)

    def test_quarter_hours_in_a_quarter_hour_zone(self) -> None:
        quarter = parse_window("15m", "Asia/Kathmandu")  # +05:45
        start = window_start(quarter, utc(2026, 2, 2, 3, 20))  # 09:05 NPT
        assert start == utc(2026, 2, 2, 3, 15)  # 09:00 NPT

    def test_half_hour_dst_shift(self) -> None:
        hour = parse_window("1h", "Australia/Lord_Howe")
        # 2026-10-04 02:00 +10:30 (15:30 UTC) jumps to 02:30 +11. Local hour starts: 01:00
        # +10:30 = 14:30 UTC, then 03:00 +11 = 16:00 UTC; the window in between is 1.5 h.
        start = window_start(hour, utc(2026, 10, 3, 15, 45))
        assert start == utc(2026, 10, 3, 14, 30)
        assert next_window_start(hour, start) == utc(2026, 10, 3, 16)


ZONES = [
    "UTC",
    "Europe/Madrid",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Havana",  # DST changes at midnight
]
SPECS = [
    parse_window(name, zone)
    for zone in ZONES
    for name in ("15m", "30m", "1h", "2h", "3h", "1d", "2d", "1w")
]
INSTANTS = st.floats(min_value=utc(2024, 1, 1), max_value=utc(2028, 1, 1))


def is_boundary(spec: WindowSpec, t: float) -> bool:
    """A window boundary by definition: local time a multiple of the width (or midnight)."""
    wall = local(t, spec.time_zone)
    if spec.seconds >= 86_400:
        # Day n of a multi-day window counts from Monday 0001-01-01 (ordinal 1).
        aligned = (wall.toordinal() - 1) % int(spec.seconds // 86_400) == 0
        # Where midnight falls in a DST gap, the day starts at the jump.
        first_instant = (
            wall.time().isoformat() == "00:00:00"
            or local(t - 1, spec.time_zone).date() != wall.date()
        )
        return aligned and first_instant
    offset = wall.utcoffset()
    assert offset is not None
    return (t + offset.total_seconds()) % spec.seconds == 0


@given(spec=st.sampled_from(SPECS), t=INSTANTS)
def test_windows_tile_time(spec: WindowSpec, t: float) -> None:
    start = window_start(spec, t)
    end = next_window_start(spec, start)
    assert start <= t < end
    assert window_start(spec, start) == start
    assert next_window_start(spec, t) == end
    assert previous_window_start(spec, end) == start
    assert next_window_start(spec, previous_window_start(spec, start)) == start
    assert is_boundary(spec, start)
    assert is_boundary(spec, end)


@given(spec=st.sampled_from([spec for spec in SPECS if spec.seconds <= 86_400]), t=INSTANTS)
def test_no_boundary_inside_a_window(spec: WindowSpec, t: float) -> None:
    start = window_start(spec, t)
    end = next_window_start(spec, start)
    # Boundaries fall on whole minutes in these zones: check every minute in between.
    minute = start - start % 60 + 60
    while minute < end:
        assert not is_boundary(spec, minute), (start, minute, end)
        minute += 60


@given(t=INSTANTS)
def test_weeks_start_on_monday_and_days_at_midnight(t: float) -> None:
    for zone in ("Europe/Madrid", "Asia/Kolkata", "America/New_York"):
        week = window_start(parse_window("1w", zone), t)
        assert local(week, zone).weekday() == 0
        day = window_start(parse_window("1d", zone), t)
        assert local(day, zone).time().isoformat() == "00:00:00"
        assert local(day, zone).date() == local(t, zone).date()


@given(t=INSTANTS)
def test_sub_day_windows_cut_local_days(t: float) -> None:
    # Every local midnight is also a boundary of the 1h and 15m windows.
    day = window_start(parse_window("1d", "Asia/Kolkata"), t)
    for name in ("1h", "15m"):
        assert window_start(parse_window(name, "Asia/Kolkata"), day) == day


@pytest.mark.parametrize("zone", ["Europe/Madrid", "America/New_York"])
def test_dst_days_are_23_and_25_hours(zone: str) -> None:
    day = parse_window("1d", zone)
    start = window_start(day, utc(2026, 1, 1, 12))
    lengths = []
    for _ in range(365):
        end = next_window_start(day, start)
        lengths.append(end - start)
        start = end
    assert sorted(set(lengths)) == [23 * HOUR, 24 * HOUR, 25 * HOUR]
    assert lengths.count(23 * HOUR) == lengths.count(25 * HOUR) == 1


def test_cached_windows_survive_out_of_order_lookups() -> None:
    hour = parse_window("1h", "Asia/Kolkata")
    instants = [utc(2026, 1, 1, h, 45) for h in (10, 9, 10, 11, 8, 10, 9)]
    expected = [t - 15 * 60 for t in instants]
    assert [window_start(hour, t) for t in instants] == expected


UTC_SPECS = [
    parse_window(name, "UTC") for name in ("15m", "30m", "1h", "2h", "3h", "1d", "2d", "1w")
]


def zone_bounds(spec: WindowSpec, t: float) -> tuple[float, float]:
    """The bounds read through the zone's offsets, the way every other zone gets them."""
    if spec.whole_days:
        return _day_bounds(spec.zone, spec.whole_days, t)
    return _sub_day_bounds(spec.zone, spec.seconds, t)


@given(
    spec=st.sampled_from(UTC_SPECS),
    t=INSTANTS | st.integers(19_700, 20_500).map(lambda day: day * 86_400.0),
    nudge=st.sampled_from([0.0, -1e-6, -1e-9, 1e-9]),
)
def test_utc_windows_skip_the_zone_and_give_the_same_bounds(
    spec: WindowSpec, t: float, nudge: float
) -> None:
    # UTC windows are cut without asking the zone for its offset (a lead event looks up many
    # windows); they must be the very floats the zone's offsets give, at midnights and just
    # before them too.
    t += nudge
    assert spec.utc
    assert _utc_bounds(spec, t) == zone_bounds(spec, t)
    start, end = zone_bounds(spec, t)
    assert start <= t < end
    assert not parse_window("1h", "Europe/London").utc
