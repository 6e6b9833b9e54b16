"""An event's time in seconds (stream/core/eventtime.py): ``timestamp()`` to the bit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import StageChanged, Visit
from stream.core.eventtime import event_seconds

_OFFSETS = st.sampled_from(["Z", "z", "+00:00", "-00:00", "+05:30", "-08:00", "+14:00"])


def _visit_at(occurred_at: str) -> Visit:
    payload = {
        "event_id": "e-1",
        "type": "visit",
        "occurred_at": occurred_at,
        "visitor_id": "v-1",
        "source": "organic",
    }
    return Visit.model_validate_json(json.dumps(payload))


def test_a_parsed_time_is_seconds_since_the_epoch_in_utc() -> None:
    change = StageChanged.model_validate_json(
        json.dumps(
            {
                "event_id": "e-2",
                "type": "stage_changed",
                "occurred_at": "2026-11-27T22:00:00+01:00",
                "lead_id": "l-1",
                "from_stage": "lead",
                "to_stage": "mql",
            }
        )
    )
    assert (
        event_seconds(change.occurred_at) == datetime(2026, 11, 27, 21, 0, tzinfo=UTC).timestamp()
    )


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    _OFFSETS,
    st.lists(_OFFSETS, max_size=3),
)
def test_event_seconds_equals_timestamp(when: datetime, offset: str, before: list[str]) -> None:
    """``event_seconds`` of a parsed timestamp is ``timestamp()`` to the bit, whichever
    offsets were parsed before it (the UTC tzinfo it remembers), from year 1 to 9999 (so
    on both sides of the range where the microseconds are a float exactly)."""
    for other in before:
        parsed = _visit_at(f"2026-01-01T00:00:00{other}").occurred_at
        assert event_seconds(parsed) == parsed.timestamp()
    moment = _visit_at(when.isoformat(timespec="microseconds") + offset).occurred_at
    assert event_seconds(moment) == moment.timestamp()


def test_event_seconds_at_the_edges_of_the_exact_range() -> None:
    """2**53 microseconds either side of the epoch, and one microsecond within and beyond."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    edge = timedelta(microseconds=1 << 53)
    for sign in (1, -1):
        for step in (-1, 0, 1):
            moment = epoch + sign * (edge + timedelta(microseconds=step))
            parsed = _visit_at(moment.isoformat(timespec="microseconds").replace("+00:00", "Z"))
            assert event_seconds(parsed.occurred_at) == parsed.occurred_at.timestamp()


def test_event_seconds_of_other_datetimes() -> None:
    """Datetimes built in Python (any tzinfo, or none) give ``timestamp()`` as well."""
    moments = [
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=-3))),
        datetime(2026, 3, 29, 1, 30),
    ]
    for moment in moments:
        assert event_seconds(moment) == moment.timestamp()
