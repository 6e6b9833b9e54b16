"""Offline recount: the same core as the worker, run over messages read back from the topics.

Used by ``funnel report`` and by the tests as the exact expectation: every message is
classified and applied on its key's home partition, exactly as a worker would (records
produced to another partition are moved home: events.md, "Partitioning"), with in-memory
stores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas import Rejection, TopicKind, classify
from stream.core.effects import FollowUp
from stream.core.funnel import ClockMode, Funnel
from stream.core.rules import FunnelRules
from stream.kafka.partitioner import home_partition


@dataclass(frozen=True, slots=True)
class InputMessage:
    """One consumed message: its topic's kind, the partition it is applied on, its bytes."""

    kind: TopicKind
    partition: int
    key: bytes | None
    value: bytes | None

    @classmethod
    def at_home(
        cls,
        kind: TopicKind,
        read_from: int,
        key: bytes | None,
        value: bytes | None,
        partitions: int,
    ) -> InputMessage:
        """A message read from partition ``read_from`` of a topic of ``partitions``, placed
        where the worker applies it: its key's home partition (without a key, where read)."""
        partition = read_from if key is None else home_partition(key, partitions)
        return cls(kind, partition, key, value)


@dataclass(slots=True)
class Recount:
    """The funnel after a recount, plus the pipeline tallies and the effects, summed up."""

    funnel: Funnel
    outcomes: Counter[tuple[TopicKind, str]] = field(default_factory=Counter)
    entries: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, source)
    reentries: Counter[str] = field(default_factory=Counter)
    followups: list[FollowUp] = field(default_factory=list)
    breaches: Counter[str] = field(default_factory=Counter)

    def drain(self) -> None:
        """Move the funnel's pending effects into the totals."""
        effects = self.funnel.effects
        self.entries.update(effects.entry_counts())
        self.reentries.update(effects.reentries)
        self.followups.extend(effects.followups)
        self.breaches.update(effects.breaches)
        effects.clear()


def recount(
    messages: Iterable[InputMessage],
    rules: FunnelRules,
    *,
    clock_mode: ClockMode = "event",
    now: float | None = None,
) -> Recount:
    """Apply ``messages`` (in the order given) to a fresh funnel with in-memory stores."""
    leads: dict[str, bytes] = {}
    visitors: dict[str, bytes] = {}
    funnel = Funnel(rules, leads, visitors, clock_mode)
    result = Recount(funnel)
    stages = frozenset(rules.all_stages)
    for msg in messages:
        event = classify(msg.kind, msg.key, msg.value, stages=stages, now=now)
        if isinstance(event, Rejection):
            result.outcomes[(msg.kind, event.reason)] += 1
            continue
        result.outcomes[(msg.kind, funnel.apply(msg.partition, event))] += 1
        result.drain()
    if clock_mode == "wall":
        funnel.advance(now)
        result.drain()
    return result
