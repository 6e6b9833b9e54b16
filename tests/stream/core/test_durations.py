"""Durations as the configuration file writes them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0s", 0),
        ("90s", 90),
        ("15m", 900),
        ("24h", 86_400),
        ("7d", 604_800),
        ("35d", 3_024_000),
        ("1w", 604_800),
        ("1h30m", 5_400),
        ("1d12h", 129_600),
        ("1.5h", 5_400),
        (" 2H ", 7_200),
    ],
)
def test_parse_duration_reads_the_configuration_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", " ", "10", "h", "1x", "-1h", "1h 30m", "30m1h", "1h1h", "1,5h", "1hour", "1h30"]
)
def test_parse_duration_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|largest"):
        parse_duration(text)


def test_parse_duration_names_the_bad_text() -> None:
    with pytest.raises(ValueError, match="'3 days'"):
        parse_duration("3 days")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (60, "1m"),
        (3_600, "1h"),
        (5_400, "1h30m"),
        (86_400, "1d"),
        (604_800, "7d"),
        (3_024_000, "35d"),
        (90_061, "1d1h1m1s"),
        (1.5, "1.5s"),
    ],
)
def test_format_duration_writes_the_shortest_form(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1, float("inf"), float("nan")])
def test_format_duration_refuses_what_is_not_a_duration(seconds: float) -> None:
    with pytest.raises(ValueError, match="duration"):
        format_duration(seconds)


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=999))
def test_format_then_parse_gives_the_same_seconds(whole: int, millis: int) -> None:
    seconds = whole + millis / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)
