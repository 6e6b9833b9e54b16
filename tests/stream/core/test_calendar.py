"""Business-hours calendar: hand-computed latencies and deadlines, and inverse properties."""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.core.calendar import BusinessCalendar

MADRID = ZoneInfo("Europe/Madrid")
HOUR = 3600.0

# 9-18 Monday to Friday in Madrid, Christmas 2026 (a Friday) off.
OFFICE = BusinessCalendar.from_names(
    "Europe/Madrid",
    ["mon", "tue", "wed", "thu", "fri"],
    time(9),
    time(18),
    [date(2026, 12, 25)],
)
# Open 00:00-06:00 every day: the DST jumps at 02:00/03:00 fall inside the opening hours.
NIGHT = BusinessCalendar.from_names(
    "Europe/Madrid", ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], time(0), time(6), []
)
# 9-18 every day, so the DST Sundays are working days.
EVERY_DAY = BusinessCalendar.from_names(
    "Europe/Madrid", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"], time(9), time(18), []
)


def madrid(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> float:
    """Epoch seconds of a Madrid wall-clock time."""
    return datetime(year, month, day, hour, minute, second, tzinfo=MADRID).timestamp()


class TestBusinessSeconds:
    def test_across_a_weekend(self) -> None:
        # Fri 2026-01-09 17:00-18:00 = 1 h, Mon 2026-01-12 09:00-10:00 = 1 h.
        assert OFFICE.business_seconds(madrid(2026, 1, 9, 17), madrid(2026, 1, 12, 10)) == 2 * HOUR

    def test_across_a_holiday(self) -> None:
        # Thu 2026-12-24 17-18 = 1 h; Fri 25 is a holiday; weekend; Mon 28 09-10 = 1 h.
        start, end = madrid(2026, 12, 24, 17), madrid(2026, 12, 28, 10)
        assert OFFICE.business_seconds(start, end) == 2 * HOUR

    def test_start_and_end_outside_hours(self) -> None:
        # Mon 07:00 -> Mon 20:00 covers the whole 9 h day.
        assert OFFICE.business_seconds(madrid(2026, 1, 12, 7), madrid(2026, 1, 12, 20)) == 9 * HOUR
        # Tue 19:00 -> Wed 08:00 is all outside opening hours.
        assert OFFICE.business_seconds(madrid(2026, 1, 13, 19), madrid(2026, 1, 14, 8)) == 0.0
        # Sat 10:00 -> Sun 17:00 is a closed weekend.
        assert OFFICE.business_seconds(madrid(2026, 1, 10, 10), madrid(2026, 1, 11, 17)) == 0.0
        # Sat 10:00 -> next Sat 10:00: five full days.
        assert (
            OFFICE.business_seconds(madrid(2026, 1, 10, 10), madrid(2026, 1, 17, 10)) == 45 * HOUR
        )

    def test_within_one_day(self) -> None:
        start, end = madrid(2026, 1, 12, 9, 30), madrid(2026, 1, 12, 11, 15)
        assert OFFICE.business_seconds(start, end) == 1.75 * HOUR

    def test_end_not_after_start_is_zero(self) -> None:
        instant = madrid(2026, 1, 12, 10)
        assert OFFICE.business_seconds(instant, instant) == 0.0
        assert OFFICE.business_seconds(instant, instant - HOUR) == 0.0

    def test_weeks_long_span(self) -> None:
        # Mon 2026-11-30 00:00 -> Mon 2027-01-04 00:00: 5 weeks, 25 working days minus
        # Christmas = 24 days of 9 h.
        start, end = madrid(2026, 11, 30), madrid(2027, 1, 4)
        assert OFFICE.business_seconds(start, end) == 24 * 9 * HOUR

    def test_spring_forward_inside_opening_hours(self) -> None:
        # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 00:00-06:00 holds 5 h.
        assert NIGHT.business_seconds(madrid(2026, 3, 29), madrid(2026, 3, 30)) == 5 * HOUR
        assert NIGHT.business_seconds(madrid(2026, 3, 28), madrid(2026, 3, 29)) == 6 * HOUR

    def test_fall_back_inside_opening_hours(self) -> None:
        # 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 00:00-06:00 holds 7 h.
        assert NIGHT.business_seconds(madrid(2026, 10, 25), madrid(2026, 10, 26)) == 7 * HOUR

    def test_dst_outside_opening_hours_keeps_nine_hour_days(self) -> None:
        for day in (29, 30):
            start, end = madrid(2026, 3, day), madrid(2026, 3, day, 23)
            assert EVERY_DAY.business_seconds(start, end) == 9 * HOUR
        assert EVERY_DAY.business_seconds(madrid(2026, 10, 25), madrid(2026, 10, 26)) == 9 * HOUR

    def test_opening_hours_in_utc_follow_the_offset(self) -> None:
        # Winter 09:00 CET = 08:00 UTC; summer 09:00 CEST = 07:00 UTC.
        winter_open = datetime(2026, 1, 12, 8, tzinfo=ZoneInfo("UTC")).timestamp()
        summer_open = datetime(2026, 7, 13, 7, tzinfo=ZoneInfo("UTC")).timestamp()
        assert OFFICE.business_seconds(winter_open - HOUR, winter_open + HOUR) == HOUR
        assert OFFICE.business_seconds(summer_open - HOUR, summer_open + HOUR) == HOUR


class TestAddBusinessSeconds:
    def test_24_business_hours_from_friday_afternoon(self) -> None:
        # Fri 17-18 = 1 h, Mon 9 h (10), Tue 9 h (19), Wed 09:00 + 5 h = 14:00.
        deadline = OFFICE.add_business_seconds(madrid(2026, 1, 9, 17), 24 * HOUR)
        assert deadline == madrid(2026, 1, 14, 14)

    def test_across_a_holiday(self) -> None:
        # Thu 24 17-18 = 1 h, Fri 25 holiday, Mon 28 9 h, Tue 29 9 h, Wed 30 09:00 + 5 h.
        deadline = OFFICE.add_business_seconds(madrid(2026, 12, 24, 17), 24 * HOUR)
        assert deadline == madrid(2026, 12, 30, 14)

    def test_start_outside_hours_waits_for_the_next_opening(self) -> None:
        # Sat 10:00 + 1 h: the clock starts Mon 09:00.
        assert OFFICE.add_business_seconds(madrid(2026, 1, 10, 10), HOUR) == madrid(2026, 1, 12, 10)
        # Mon 07:00 + 2 h = Mon 11:00; Mon 18:30 + 30 min = Tue 09:30.
        assert OFFICE.add_business_seconds(madrid(2026, 1, 12, 7), 2 * HOUR) == madrid(
            2026, 1, 12, 11
        )
        assert OFFICE.add_business_seconds(madrid(2026, 1, 12, 18, 30), HOUR / 2) == madrid(
            2026, 1, 13, 9, 30
        )

    def test_exactly_the_rest_of_the_day_ends_at_closing(self) -> None:
        assert OFFICE.add_business_seconds(madrid(2026, 1, 9, 17), HOUR) == madrid(2026, 1, 9, 18)

    def test_zero_seconds(self) -> None:
        inside = madrid(2026, 1, 12, 10)
        assert OFFICE.add_business_seconds(inside, 0.0) == inside
        assert OFFICE.add_business_seconds(madrid(2026, 1, 10), 0.0) == madrid(2026, 1, 12, 9)

    def test_across_spring_forward(self) -> None:
        # Sat 28 05:00 + 2 h: Sat 05-06 = 1 h, then Sun 00:00 CET + 1 h = 01:00 CET.
        deadline = NIGHT.add_business_seconds(madrid(2026, 3, 28, 5), 2 * HOUR)
        assert deadline == madrid(2026, 3, 29, 1)
        # Sun 29 00:00 + 5 h uses up the 5 h day: it ends at 06:00 CEST.
        assert NIGHT.add_business_seconds(madrid(2026, 3, 29), 5 * HOUR) == madrid(2026, 3, 29, 6)

    def test_across_fall_back(self) -> None:
        # Sun 25 00:00 + 7 h uses up the 7 h day: 06:00 CET.
        assert NIGHT.add_business_seconds(madrid(2026, 10, 25), 7 * HOUR) == madrid(2026, 10, 25, 6)

    @pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan")])
    def test_refuses_bad_durations(self, seconds: float) -> None:
        with pytest.raises(ValueError, match="business seconds"):
            OFFICE.add_business_seconds(madrid(2026, 1, 12, 10), seconds)


YEAR_2026 = st.floats(min_value=madrid(2026, 1, 1), max_value=madrid(2027, 1, 1))
UP_TO_30_DAYS = st.floats(min_value=0.0, max_value=30 * 86_400.0)
CALENDARS = st.sampled_from([OFFICE, NIGHT, EVERY_DAY])


@given(calendar=CALENDARS, start=YEAR_2026, seconds=UP_TO_30_DAYS)
def test_add_is_the_inverse_of_business_seconds(
    calendar: BusinessCalendar, start: float, seconds: float
) -> None:
    deadline = calendar.add_business_seconds(start, seconds)
    assert deadline >= start
    assert calendar.business_seconds(start, deadline) == pytest.approx(seconds, abs=1e-6)


@given(calendar=CALENDARS, start=YEAR_2026, seconds=st.floats(min_value=1.0, max_value=864_000.0))
def test_deadline_is_the_earliest_such_instant(
    calendar: BusinessCalendar, start: float, seconds: float
) -> None:
    deadline = calendar.add_business_seconds(start, seconds)
    assert calendar.business_seconds(start, deadline - 0.5) < seconds


@given(calendar=CALENDARS, instants=st.lists(YEAR_2026, min_size=3, max_size=3))
def test_business_seconds_is_additive(calendar: BusinessCalendar, instants: list[float]) -> None:
    a, b, c = sorted(instants)
    whole = calendar.business_seconds(a, c)
    parts = calendar.business_seconds(a, b) + calendar.business_seconds(b, c)
    assert whole == pytest.approx(parts, abs=1e-6)
    assert 0.0 <= whole <= c - a


class TestConstruction:
    def test_from_names_maps_weekdays(self) -> None:
        assert OFFICE.days == frozenset({0, 1, 2, 3, 4})
        assert EVERY_DAY.days == frozenset(range(7))
        assert OFFICE.holidays == frozenset({date(2026, 12, 25)})

    def test_no_working_days(self) -> None:
        with pytest.raises(ValueError, match="no working days"):
            BusinessCalendar.from_names("UTC", [], time(9), time(18), [])

    def test_unknown_weekday(self) -> None:
        with pytest.raises(ValueError, match="'funday'"):
            BusinessCalendar.from_names("UTC", ["mon", "funday"], time(9), time(18), [])

    def test_weekday_number_out_of_range(self) -> None:
        with pytest.raises(ValueError, match="weekday numbers"):
            BusinessCalendar("UTC", frozenset({7}), time(9), time(18), frozenset())

    def test_unknown_time_zone(self) -> None:
        with pytest.raises(ValueError, match="Mars/Olympus"):
            BusinessCalendar.from_names("Mars/Olympus", ["mon"], time(9), time(18), [])

    def test_closing_not_after_opening(self) -> None:
        with pytest.raises(ValueError, match="not after"):
            BusinessCalendar.from_names("UTC", ["mon"], time(18), time(9), [])
        with pytest.raises(ValueError, match="not after"):
            BusinessCalendar.from_names("UTC", ["mon"], time(9), time(9), [])

    def test_closing_at_midnight_means_end_of_day(self) -> None:
        late = BusinessCalendar.from_names("Europe/Madrid", ["sun"], time(20), time(0), [])
        # Sun 2026-03-29 20:00 -> Mon 00:00 CEST is 4 h.
        assert late.business_seconds(madrid(2026, 3, 29), madrid(2026, 3, 30, 12)) == 4 * HOUR
        all_day = BusinessCalendar.from_names("Europe/Madrid", ["sun"], time(0), time(0), [])
        assert all_day.business_seconds(madrid(2026, 10, 24), madrid(2026, 10, 27)) == 25 * HOUR

    def test_aware_opening_hours_are_refused(self) -> None:
        with pytest.raises(ValueError, match="wall-clock"):
            BusinessCalendar.from_names("UTC", ["mon"], time(9, tzinfo=MADRID), time(18), [])

    def test_equal_calendars_are_interchangeable(self) -> None:
        twin = BusinessCalendar.from_names(
            "Europe/Madrid",
            ["fri", "thu", "wed", "tue", "mon"],
            time(9),
            time(18),
            [date(2026, 12, 25)],
        )
        assert twin == OFFICE
        assert hash(twin) == hash(OFFICE)
