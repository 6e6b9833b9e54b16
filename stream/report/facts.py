"""The facts of a recount, with their times: what a period report and a measurement need.

``collect`` drives the same core as the worker and ``stream.report.recount`` (``classify``, then
``Funnel.apply`` on in-memory stores, in partition order) and then reads the final lead
states: every first entry into a stage with its time and source, each lead's first entries
into the funnel-order stages (for the time between stages and the cohorts), and every lead's
follow-up outcome at the funnel's clock. The worker's counters record facts as they were
first known; these are the facts as they stand once every message is read (docs/reports.md).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from schemas import Rejection, Visit, classify
from stream.core.effects import FollowUp
from stream.core.funnel import ClockMode, Funnel
from stream.core.leads import UNKNOWN_SOURCE, LeadState, lead_status
from stream.core.rules import FunnelRules
from stream.core.stages import first_entries, pairs_until, whole_way
from stream.planning.plan import Measured
from stream.report.recount import InputMessage

__all__ = ["Entry", "Facts", "Journey", "LeadOutcome", "collect"]

# A lead's first entries into the funnel-order stages, in funnel order (``first_entries``).
Journey = Sequence[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class Entry:
    """A first entry into a stage (every distinct visit, for the visit stage)."""

    stage: str
    source: str
    at: float


@dataclass(frozen=True, slots=True)
class LeadOutcome:
    """Where a lead's follow-up clock stands at the report's clock."""

    team: str  # the follow-up's team, else the lead's current team (as the worker counts)
    clock_start: float
    followup: FollowUp | None
    breached: bool
    open: bool
    overdue: bool
    # The rep credited with the lead: at its follow-up, else its owner now (None: no owner);
    # and the rep who owned it at its deadline, who is charged with a breach.
    owner: str | None = None
    breach_owner: str | None = None


@dataclass(slots=True)
class Facts:
    """Everything a report or a measurement reads, from one pass over the topics."""

    entries: list[Entry] = field(default_factory=list)
    leads: list[LeadOutcome] = field(default_factory=list)
    journeys: list[Journey] = field(default_factory=list)  # every released lead's
    whole_way: tuple[str, str] = ("lead", "customer")  # the rules' ``whole_way``
    as_of: float = 0.0  # the clock: the watermark (event mode) or now (wall mode)
    messages: int = 0
    rejected: int = 0

    def measure(self, stages: Iterable[str], start: float, end: float) -> Measured:
        """First entries per stage with their time in ``[start, end)``."""
        counts = dict.fromkeys(stages, 0)
        for entry in self.entries:
            if entry.stage in counts and start <= entry.at < end:
                counts[entry.stage] += 1
        return Measured(counts, (end - start) / 86400.0, start, end)

    def stage_times(self, start: float, end: float) -> dict[tuple[str, str], list[float]]:
        """Seconds per step (from stage, to stage), as ``funnel_stage_time_seconds`` observes
        them (``stream.core.stages.pairs_until``), for the steps whose later entry is in
        ``[start, end)``."""
        out: dict[tuple[str, str], list[float]] = defaultdict(list)
        for journey in self.journeys:
            entered = dict(journey)
            for step in pairs_until(list(journey), math.inf, self.whole_way):
                if start <= entered[step.to_stage] < end:
                    out[step.from_stage, step.to_stage].append(step.seconds)
        return dict(out)


def collect(
    messages: Iterable[InputMessage], rules: FunnelRules, *, clock_mode: ClockMode, now: float
) -> Facts:
    """Apply ``messages`` in the order given, as a worker would, and gather the facts.

    ``now`` is the wall clock: it judges future timestamps, and in ``wall`` mode it is the
    clock deadlines are judged by. In ``event`` mode each lead partition's event clock is
    used, exactly as in the worker.
    """
    leads: dict[str, bytes] = {}
    visitors: dict[str, bytes] = {}
    funnel = Funnel(rules, leads, visitors, clock_mode, now=lambda: now)
    facts = Facts(whole_way=whole_way(rules))
    stages = frozenset(rules.all_stages)
    for msg in messages:
        facts.messages += 1
        event = classify(msg.kind, msg.key, msg.value, stages=stages, now=now)
        if isinstance(event, Rejection):
            facts.rejected += 1
            continue
        status = funnel.apply(msg.partition, event)
        if status == "applied" and isinstance(event, Visit):
            facts.entries.append(Entry(rules.visit_stage, event.source, event.occurred_epoch))
        funnel.effects.clear()
    funnel.advance(now)
    funnel.effects.clear()
    facts.as_of = now if clock_mode == "wall" else funnel.watermark
    for _, raw in funnel.leads.items():
        _lead_facts(LeadState.decode(raw), funnel, facts)
    facts.entries.sort(key=lambda entry: entry.at)
    return facts


def _lead_facts(state: LeadState, funnel: Funnel, facts: Facts) -> None:
    rules = funnel.rules
    clock = funnel.view("leads", state.partition).clock
    status = lead_status(state, rules, clock)
    if not status.released:  # held: not counted yet, as in the worker
        return
    source = state.source if state.source is not None else UNKNOWN_SOURCE
    for stage, times in state.entries.items():
        facts.entries.append(Entry(stage, source, times[0]))
    facts.journeys.append(tuple(first_entries(state, rules)))
    start = state.clock_start(rules)
    if start is None:
        return
    followup = status.followup
    team = followup.team if followup is not None else state.current_team
    facts.leads.append(
        LeadOutcome(
            team=team,
            clock_start=start,
            followup=followup,
            breached=status.breached,
            open=status.open is not None,
            overdue=status.open is not None and status.breached,
            owner=followup.owner if followup is not None else state.current_owner,
            breach_owner=status.breach_owner,
        )
    )
