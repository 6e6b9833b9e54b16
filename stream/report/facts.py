"""The facts of a recount, with their times: what a period report and a measurement need.

``Collector`` (and ``collect``, over a list) drives the same core as the worker
(``classify``, then the worker's state changes: ``record_lead_event`` for leads, the duplicate
detection of ``RecentVisits`` for visits, in partition order) and then reads the final lead
states: every first entry into a stage with its time and source, each lead's first entries
into the funnel-order stages (for the time between stages and the cohorts), and every lead's
follow-up outcome at the funnel's clock. The worker's counters record facts as they were
first known; these are the facts as they stand once every message is read (docs/reports.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from schemas import Rejection, TopicKind, Visit, classify
from stream.core.effects import FollowUp
from stream.core.eventtime import event_seconds
from stream.core.funnel import ClockMode, Funnel
from stream.core.leads import UNKNOWN_SOURCE, LeadState
from stream.core.leadstatus import lead_status
from stream.core.record import record_lead_event
from stream.core.rules import FunnelRules
from stream.core.stages import first_entries, pairs_until, whole_way
from stream.planning.plan import Measured
from stream.report.entries import Entries
from stream.report.recount import InputMessage
from stream.report.visitors import RecentVisits

__all__ = ["Collector", "Facts", "Journey", "LeadOutcome", "VisitFacts", "collect"]

# A lead's first entries into the funnel-order stages, in funnel order (``first_entries``).
Journey = Sequence[tuple[str, float]]


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

    entries: Entries = field(default_factory=Entries)  # first entries per (stage, source)
    leads: list[LeadOutcome] = field(default_factory=list)
    journeys: list[Journey] = field(default_factory=list)  # every released lead's
    whole_way: tuple[str, str] = ("lead", "customer")  # the rules' ``whole_way``
    as_of: float = 0.0  # the clock: the watermark (event mode) or now (wall mode)
    messages: int = 0
    rejected: int = 0

    def measure(self, stages: Iterable[str], start: float, end: float) -> Measured:
        """First entries per stage with their time in ``[start, end)``."""
        counts = {stage: self.entries.count(stage, start, end) for stage in stages}
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


@dataclass(frozen=True, slots=True)
class VisitFacts:
    """What the visits of some partitions add to the facts (``Collector.visit_facts``): their
    first entries, the latest time applied, and the messages read and rejected."""

    entries: Entries
    watermark: float
    messages: int
    rejected: int


class Collector:
    """Applies messages one at a time, as a worker would, and gathers the facts at the end.

    ``now`` is the wall clock: it judges future timestamps, and in ``wall`` mode it is the
    clock deadlines are judged by. In ``event`` mode each lead partition's event clock is
    used, exactly as in the worker. Lead events change their states and partition clocks as
    in the worker's ``Funnel`` (``record_lead_event``: no gauges, no effects); visits go only
    through its duplicate detection (``RecentVisits``), which holds no visitor past the
    duplicate horizon.
    """

    def __init__(self, rules: FunnelRules, *, clock_mode: ClockMode, now: float) -> None:
        self.rules = rules
        self.clock_mode = clock_mode
        self.now = now
        self._leads: dict[str, bytes] = {}
        self.funnel = Funnel(rules, self._leads, {}, clock_mode, now=lambda: now)
        self.visits = RecentVisits(rules.dedupe_horizon)
        self._visits_watermark = 0.0  # of the visits read before ``read_all("visits")``
        self.facts = Facts(whole_way=whole_way(rules))
        self._stages = frozenset(rules.all_stages)

    def add(self, kind: TopicKind, partition: int, key: bytes | None, value: bytes | None) -> None:
        """Classify and apply one message read from a ``kind`` topic, on ``partition`` (its
        key's home partition)."""
        facts = self.facts
        facts.messages += 1
        event = classify(kind, key, value, stages=self._stages, now=self.now)
        if isinstance(event, Rejection):
            facts.rejected += 1
            return
        t = event_seconds(event.occurred_at)
        if isinstance(event, Visit):
            if self.visits.add(partition, event.visitor_id, event.event_id, t):
                facts.entries.add(self.rules.visit_stage, event.source, t)
            return
        record_lead_event(self.funnel, partition, event, t)

    def read_all(self, kind: TopicKind) -> None:
        """Every message of ``kind`` has been added: once the visits are read, the visitors
        held for their duplicate detection are let go (only its clock is kept)."""
        if kind == "visits":
            self._visits_watermark = max(self._visits_watermark, self.visits.watermark)
            self.visits = RecentVisits(self.rules.dedupe_horizon)
            _return_free_memory()

    def visit_facts(self) -> VisitFacts:
        """What the visits read so far add to the facts (once ``read_all("visits")``), for
        ``add_visit_facts`` of a collector that read the visits of other partitions."""
        facts = self.facts
        return VisitFacts(facts.entries, self._visits_watermark, facts.messages, facts.rejected)

    def add_visit_facts(self, visits: VisitFacts) -> None:
        """Count the visits of other partitions (``visit_facts`` of another collector) as if
        they were read here: a visit changes nothing but its partition's duplicate detection,
        the first entries and the clock's watermark."""
        facts = self.facts
        facts.entries.merge(visits.entries)
        facts.messages += visits.messages
        facts.rejected += visits.rejected
        self._visits_watermark = max(self._visits_watermark, visits.watermark)

    def finish(self) -> Facts:
        """The facts once every message is applied: the clock moved to ``now`` (wall
        mode), and every lead's first entries and follow-up outcome."""
        funnel, facts = self.funnel, self.facts
        funnel.advance(self.now)
        funnel.effects.clear()
        if self.clock_mode == "wall":
            facts.as_of = self.now
        else:
            latest = max((view.watermark for view in funnel.views.values()), default=0.0)
            facts.as_of = max(latest, self._visits_watermark, self.visits.watermark)
        self.visits = RecentVisits(self.rules.dedupe_horizon)  # read: its memory is free
        # Each lead's state is let go once its facts are taken, in the order of the store.
        leads = self._leads
        for lead_id in list(leads):
            _lead_facts(LeadState.decode(leads.pop(lead_id)), funnel, facts)
        facts.entries.seal()
        return facts


def collect(
    messages: Iterable[InputMessage], rules: FunnelRules, *, clock_mode: ClockMode, now: float
) -> Facts:
    """Apply ``messages`` in the order given, as a worker would, and gather the facts
    (``Collector``)."""
    collector = Collector(rules, clock_mode=clock_mode, now=now)
    for msg in messages:
        collector.add(msg.kind, msg.partition, msg.key, msg.value)
    return collector.finish()


def _lead_facts(state: LeadState, funnel: Funnel, facts: Facts) -> None:
    rules = funnel.rules
    clock = funnel.view("leads", state.partition).clock
    status = lead_status(state, rules, clock)
    if not status.released:  # held: not counted yet, as in the worker
        return
    source = state.source if state.source is not None else UNKNOWN_SOURCE
    for stage, times in state.entries.items():
        facts.entries.add(stage, source, times[0])
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


def _return_free_memory() -> None:
    """Hand the memory just freed back to the system (glibc keeps freed heap memory for the
    process otherwise, and the lead states, allocated elsewhere by Python, would add to it)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
