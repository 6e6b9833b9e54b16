"""Splitting a fetch into records on their home partition and records to move, with origin."""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import given
from hypothesis import strategies as st

from stream.kafka.partitioner import home_partition
from stream.runtime.reroute import origin, split_off_home


class Rec(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@given(
    keys=st.lists(st.one_of(st.none(), st.binary(max_size=12)), max_size=60),
    partition=st.integers(0, 7),
)
def test_split_keeps_home_records_in_order_and_groups_the_rest(
    keys: list[bytes | None], partition: int
) -> None:
    records = [Rec("t", partition, i, k) for i, k in enumerate(keys)]
    home, away = split_off_home(records, partition, 8)
    assert list(home) == [
        r for r in records if r.key is None or home_partition(r.key, 8) == partition
    ]
    expected: dict[int, list[Rec]] = {}
    for r in records:
        if r.key is not None and home_partition(r.key, 8) != partition:
            expected.setdefault(home_partition(r.key, 8), []).append(r)
    assert dict(away) == expected


def test_a_fetch_all_at_home_is_returned_as_it_is() -> None:
    records = [Rec("t", home_partition(b"k", 8), 0, b"k"), Rec("t", 0, 1, None)]
    records[1] = records[1]._replace(partition=records[0].partition)
    home, away = split_off_home(records, records[0].partition, 8)
    assert home is records
    assert away == {}


def test_origin_is_where_a_record_was_first_read() -> None:
    first = Rec("funnel.leads", 3, 41, b"k")
    assert origin(first, False) == (b"funnel.leads", b"3", b"41")
    moved = Rec(
        "funnel-funnel.leads-rerouted",
        5,
        7,
        b"k",
        (
            ("source_topic", b"forged"),  # a producer's own header, before the worker's
            ("source_topic", b"funnel.leads"),
            ("source_partition", b"3"),
            ("source_offset", b"41"),
        ),
    )
    assert origin(moved, True) == (b"funnel.leads", b"3", b"41")
    assert origin(moved._replace(headers=()), True) == (b"funnel-funnel.leads-rerouted", b"5", b"7")
