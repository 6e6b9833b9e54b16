"""A key's home partition is Kafka's default partitioner: aiokafka's and the Java client's."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from stream.kafka.partitioner import home_partition


@given(key=st.binary(max_size=200), partitions=st.integers(1, 300))
def test_home_partition_is_aiokafkas_default_partitioner(key: bytes, partitions: int) -> None:
    every = list(range(partitions))
    assert home_partition(key, partitions) == DefaultPartitioner()(key, every, every)


def test_known_keys_land_where_the_java_client_puts_them() -> None:
    # Values of org.apache.kafka.common.utils.Utils.murmur2 (its unit test), made positive.
    assert home_partition(b"21", 1 << 31) == (-973932308 & 0x7FFFFFFF)
    assert home_partition(b"foobar", 1 << 31) == (-790332482 & 0x7FFFFFFF)
    assert home_partition(b"a-little-bit-long-string", 1 << 31) == (-985981536 & 0x7FFFFFFF)
