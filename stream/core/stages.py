"""Where a lead is in the funnel, and how long it took from stage to stage.

Both are derived from a lead's first entries (``LeadState.entries``), so they follow the same
rules as every other aggregate: whatever the arrival order, the same events give the same
answer.

**Stage times.** The lead's funnel-order stages it has entered, in funnel order, make
consecutive pairs: from its first entry into one to its first entry into the next one it
reached (a skipped stage is skipped: ``lead → sql`` is one pair). The whole way, ``lead →
customer``, is one more observation when the lead passed through stages in between. A pair is
observed once its later stage's first entry is final: when the partition's event clock has
passed it by ``funnel.orphan_hold`` (the same allowance stage changes have for arriving late).
Each first entry is a *cut*: at the cut of time ``t`` the pairs among the first entries up to
``t`` are compared with those before ``t``, and the new ones are observed. That depends on the
entries only, not on the order they were read in; an entry read after its cut has passed (later
than the allowance) is observed on arrival against the pairs of the entries before it.

**Position.** A lead's current stage is the furthest funnel-order stage it has entered,
unless it was disqualified at or after entering it; ``funnel.stuck_after`` makes it stuck there
once it has stayed that long, on the SLA's clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Final, NamedTuple

from stream.core.leads import LeadState
from stream.core.rules import FunnelRules

DISQUALIFIED: Final = "disqualified"


class StageTime(NamedTuple):
    """One observation of ``funnel_stage_time_seconds``."""

    from_stage: str
    to_stage: str
    seconds: float


class Position(NamedTuple):
    """Where a released lead is: its current stage, since when, when it becomes stuck, and
    its current team and owner (what the list of stuck leads filters on)."""

    stage: str
    entered_at: float
    stuck_at: float | None
    team: str
    owner: str | None


def first_entries(state: LeadState, rules: FunnelRules) -> list[tuple[str, float]]:
    """(stage, first entry) of every funnel-order stage the lead entered, in funnel order."""
    return list(tracked(state, rules, True).entries)


def pairs_until(
    entries: list[tuple[str, float]], cut: float, whole: tuple[str, str]
) -> list[StageTime]:
    """The stage times among the first ``entries`` (funnel order) at or before ``cut``: each
    consecutive pair, and ``whole`` (lead → customer) when both ends are there with a stage
    in between."""
    known = [(stage, t) for stage, t in entries if t <= cut]
    out = [StageTime(a, b, max(0.0, tb - ta)) for (a, ta), (b, tb) in itertools.pairwise(known)]
    if len(known) > 2 and known[0][0] == whole[0] and known[-1][0] == whole[1]:
        out.append(StageTime(whole[0], whole[1], max(0.0, known[-1][1] - known[0][1])))
    return out


def new_at_cut(
    entries: list[tuple[str, float]], cut: float, whole: tuple[str, str]
) -> list[StageTime]:
    """The stage times that the first entries at time ``cut`` add (none if none is at it)."""
    if not any(t == cut for _, t in entries):
        return []
    remaining = pairs_until([(s, t) for s, t in entries if t < cut], cut, whole)
    found = []
    for pair in pairs_until(entries, cut, whole):
        if pair in remaining:
            remaining.remove(pair)
        else:
            found.append(pair)
    return found


def whole_way(rules: FunnelRules) -> tuple[str, str]:
    """The stages of the whole-way observation: the lead stage and the last funnel stage."""
    return (rules.lead_stage, rules.stages[-1])


def cuts(entries: Iterable[tuple[str, float]]) -> list[float]:
    """The distinct first-entry times, ascending."""
    return sorted({t for _, t in entries})


def position(state: LeadState, rules: FunnelRules) -> Position | None:
    """The lead's current stage (furthest funnel-order stage entered), None if disqualified
    since or if it entered none."""
    return tracked(state, rules, True).position


class Tracked(NamedTuple):
    """What a lead contributes to the stage aggregates: its position, and its first entries
    (stage, time) in funnel order, whose distinct times are its cuts."""

    position: Position | None
    entries: tuple[tuple[str, float], ...]

    @property
    def cuts(self) -> list[float]:
        return sorted({t for _, t in self.entries})


NOT_TRACKED: Final = Tracked(None, ())

# A named tuple's own constructor is a Python function the interpreter runs (mypyc compiles no
# NamedTuple class); the ones built for every lead event are made as tuples of their class.
_new_tuple: Final = tuple.__new__


def added_at_cut(
    before: Tracked, after: Tracked, cut: float, whole: tuple[str, str]
) -> list[StageTime]:
    """What a change of the lead's first entries adds at a cut already due (observed then
    with the entries known at the time, ``before``'s)."""
    had = new_at_cut(list(before.entries), cut, whole)
    found = []
    for step in new_at_cut(list(after.entries), cut, whole):
        if step in had:
            had.remove(step)
        else:
            found.append(step)
    return found


def tracked(state: LeadState, rules: FunnelRules, released: bool) -> Tracked:
    """The lead's contribution; a lead not released yet (held) contributes nothing.

    On every lead event, twice: one pass over the stages gives the cuts and the position."""
    if not released:
        return NOT_TRACKED
    return tracked_entries(state.entries, rules, state.current_team, state.current_owner)


def tracked_entries(
    entries: dict[str, list[float]], rules: FunnelRules, team: str, owner: str | None
) -> Tracked:
    """``tracked`` of a released lead with these entries, current team and owner."""
    firsts: list[tuple[str, float]] = []
    furthest: str | None = None
    for stage in rules.stages:
        times = entries.get(stage)
        if times:
            firsts.append((stage, times[0]))
            furthest = stage
    if furthest is None:
        return NOT_TRACKED
    entered = entries[furthest][0]
    dq = entries.get(DISQUALIFIED)
    where = None
    if not dq or dq[-1] < entered:
        stuck = rules.stuck_at(furthest, entered)
        where = _new_tuple(Position, (furthest, entered, stuck, team, owner))
    return _new_tuple(Tracked, (where, tuple(firsts)))
