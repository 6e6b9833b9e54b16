"""Offline recount: the same core as the worker, run over messages read back from the topics.

Used by ``funnel report`` and by the tests as the exact expectation: every message is
classified and applied in partition order, exactly as a worker would, with in-memory stores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas import Rejection, TopicKind, classify
from stream.core.effects import FollowUp
from stream.core.funnel import ClockMode, Funnel
from stream.core.rules import FunnelRules


@dataclass(frozen=True, slots=True)
class InputMessage:
    """One consumed message: where it came from and its raw bytes."""

    kind: TopicKind
    partition: int
    key: bytes | None
    value: bytes | None


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
        self.entries.update(effects.entries)
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
