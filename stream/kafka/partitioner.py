"""A key's home partition: Kafka's default partitioner (events.md, "Partitioning").

murmur2 of the key bytes with the Java client's seed, made positive, modulo the partition
count: what the Java client, aiokafka and KafkaJS compute for a keyed record. The worker
applies every record on its key's home partition, whatever partitioner the producer used.
``murmurhash2`` is the C implementation of the same function (a test holds it equal to
aiokafka's ``DefaultPartitioner``); aiokafka's own is pure Python and a tenth as fast.
"""

from __future__ import annotations

from murmurhash2 import murmurhash2

# org.apache.kafka.common.utils.Utils.murmur2
MURMUR2_SEED = 0x9747B28C


def home_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``."""
    return (murmurhash2(key, MURMUR2_SEED) & 0x7FFFFFFF) % partitions
