"""Per-lead state: stages reached, the follow-up clock, the lead's team, owner and source.

A ``LeadState`` holds every fact about one lead that the funnel needs, including the ids of the
events already applied to it, so applying an event twice (a duplicate, or a replay after a
crash) changes nothing. Everything derived (window counts, open leads) is computed from it by
``contribution``, so aggregates can always be rebuilt from the states alone.

Arrival order does not matter: a stage's first entry is its earliest ``occurred_at``; stage
changes that arrive before their ``lead_created`` are held (stored, not counted) until the lead
arrives or the orphan hold passes, and are then counted on their own (source ``unknown``,
team ``default``).

What a state means at a given clock (released, followed up, open, breached, at risk) is derived
from it by ``stream.core.leadstatus``.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass, field
from typing import Any, Final

from stream.core.codec import decode_json, encode_json
from stream.core.effects import Effects
from stream.core.rules import FunnelRules

DEFAULT_TEAM: Final = "default"
UNKNOWN_SOURCE: Final = "unknown"


@dataclass(slots=True)
class LeadState:
    """Everything the funnel knows about one lead; serialised into the ``lead_states`` table."""

    partition: int
    created_at: float | None = None  # earliest lead_created; None while only stage changes came
    source: str | None = None
    # (occurred_at, team), sorted: the lead's own team at created_at, then the overrides
    teams: list[tuple[float, str]] = field(default_factory=list)
    entries: dict[str, list[float]] = field(default_factory=dict)  # stage -> entry times, sorted
    seen: dict[str, float] = field(default_factory=dict)  # event_id -> occurred_at
    # Highest occurred_at of each event type applied: rebuilds the partition's event clock.
    max_created_at: float = 0.0
    max_changed_at: float = 0.0
    team: str | None = None  # the lead's own team, from its earliest lead_created
    # stage -> re-entry times no longer in ``entries`` (stream.core.bounds): re-entries count
    dropped_reentries: dict[str, int] = field(default_factory=dict)
    campaign: str | None = None  # from the earliest lead_created
    # (occurred_at, owner), sorted: the owner given by the earliest lead_created, then the
    # stage changes' ``owner``. Owners are pseudonymous rep ids, never metric labels.
    owners: list[tuple[float, str]] = field(default_factory=list)

    def __init__(
        self,
        partition: int,
        created_at: float | None = None,
        source: str | None = None,
        teams: list[tuple[float, str]] | None = None,
        entries: dict[str, list[float]] | None = None,
        seen: dict[str, float] | None = None,
        max_created_at: float = 0.0,
        max_changed_at: float = 0.0,
        team: str | None = None,
        dropped_reentries: dict[str, int] | None = None,
        campaign: str | None = None,
        owners: list[tuple[float, str]] | None = None,
    ) -> None:
        # Written out, not generated: stream/compiled.py ("__init__") says why.
        self.partition = partition
        self.created_at = created_at
        self.source = source
        self.teams = [] if teams is None else teams
        self.entries = {} if entries is None else entries
        self.seen = {} if seen is None else seen
        self.max_created_at = max_created_at
        self.max_changed_at = max_changed_at
        self.team = team
        self.dropped_reentries = {} if dropped_reentries is None else dropped_reentries
        self.campaign = campaign
        self.owners = [] if owners is None else owners

    def encode(self) -> bytes:
        """Compact JSON for the state table (campaign and owners only when there are some)."""
        fields = [
            self.partition,
            self.created_at,
            self.source,
            self.teams,
            self.entries,
            self.seen,
            self.max_created_at,
            self.max_changed_at,
            self.team,
            self.dropped_reentries,
        ]
        if self.campaign is not None or self.owners:
            fields += [self.campaign, self.owners]
        return encode_json(fields)

    @staticmethod
    def decode(raw: bytes) -> LeadState:
        """Inverse of ``encode`` (also reads states written before ``team`` was kept, and
        before the ids in ``seen`` were digests, ``stream.core.bounds.dedupe_key``)."""
        return LeadState.from_fields(decode_json(raw))

    @staticmethod
    def from_fields(fields: list[Any]) -> LeadState:
        """The state of ``encode``'s fields, as JSON gives them back."""
        p, created, source, teams, entries, seen, max_created, max_changed, *rest = fields
        team = rest[0] if rest else next((n for t, n in teams if t == created), None)
        if len(rest) < 2:
            from stream.core.bounds import dedupe_key  # bounds imports this module

            seen = {dedupe_key(eid): t for eid, t in seen.items()}
        campaign, owners = (rest[2], rest[3]) if len(rest) > 3 else (None, ())
        return LeadState(
            partition=p,
            created_at=created,
            source=source,
            teams=[(t, name) for t, name in teams],
            entries=entries,
            seen=seen,
            max_created_at=max_created,
            max_changed_at=max_changed,
            team=team,
            dropped_reentries=rest[1] if len(rest) > 1 else {},
            campaign=campaign,
            owners=[(t, name) for t, name in owners],
        )

    # -- derived facts -------------------------------------------------------------------

    def first_entry(self, stage: str) -> float | None:
        """Earliest entry into ``stage``, or None if never entered."""
        times = self.entries.get(stage)
        return times[0] if times else None

    def team_at(self, t: float) -> str:
        """The team that owned the lead at event time ``t``.

        That is the latest assignment (``lead_created`` or override) at or before ``t``.
        Before any, it is the lead's own team, from its earliest ``lead_created`` (a stop
        stamped before the lead, clock skew, belongs to it), or ``default`` for a lead that
        never arrived: an override only counts from its own time on.
        """
        team = _assigned_at(self.teams, t)
        if team is not None:
            return team
        return self.team if self.team is not None else DEFAULT_TEAM

    @property
    def current_team(self) -> str:
        """The team that owns the lead now (the latest assignment in event time)."""
        return self.teams[-1][1] if self.teams else DEFAULT_TEAM

    def owner_at(self, t: float) -> str | None:
        """The rep who owned the lead at event time ``t``, as ``team_at`` for teams: the
        latest owner given at or before ``t``, else the owner of the earliest
        ``lead_created`` (None if none was given)."""
        owner = _assigned_at(self.owners, t)
        if owner is not None:
            return owner
        return next((n for when, n in self.owners if when == self.created_at), None)

    @property
    def current_owner(self) -> str | None:
        """The rep who owns the lead now (the latest owner given in event time), or None."""
        return self.owners[-1][1] if self.owners else None

    def held_since(self) -> float | None:
        """Earliest held stage change while the lead has not arrived, else None."""
        if self.created_at is not None or not self.entries:
            return None
        return min(times[0] for times in self.entries.values())

    def is_released(self, rules: FunnelRules, clock: float) -> bool:
        """True once the lead arrived, or its held stage changes waited out the orphan hold."""
        if self.created_at is not None:
            return True
        held = self.held_since()
        return held is not None and clock > held + rules.orphan_hold

    def clock_start(self, rules: FunnelRules) -> float | None:
        """When the follow-up clock started: first entry into the configured start stage."""
        return self.first_entry(rules.clock_starts_at)

    def clock_stop(self, rules: FunnelRules) -> float | None:
        """The first transition into any follow-up stage."""
        stops = [times[0] for s, times in self.entries.items() if s in rules.followup_stages]
        return min(stops) if stops else None


def _when(assignment: tuple[float, str]) -> float:
    return assignment[0]


def _assigned_at(assignments: list[tuple[float, str]], t: float) -> str | None:
    """The latest of time-sorted ``(time, name)`` assignments at or before ``t``, or None."""
    if len(assignments) == 1:  # most leads: one team, one owner (the rebuild reads a million)
        when, name = assignments[0]
        return name if when <= t else None
    i = bisect_right(assignments, t, key=_when)
    return assignments[i - 1][1] if i else None


def enter_stage(state: LeadState, stage: str, t: float, released: bool, effects: Effects) -> None:
    """Record an entry into ``stage`` at ``t``: a first entry or a re-entry."""
    times = state.entries.get(stage)
    if times is None:
        state.entries[stage] = [t]
        if released:
            source = state.source if state.source is not None else UNKNOWN_SOURCE
            effects.entries.append((stage, source))
    else:
        insort(times, t)
        if released:
            effects.reentries.append(stage)


def record_lead_created(
    state: LeadState,
    event_id: str,
    t: float,
    source: str,
    team: str,
    rules: FunnelRules,
    released: bool,
    effects: Effects,
    campaign: str | None,
    owner: str | None,
) -> None:
    """What a new ``lead_created`` changes in ``state`` (the clock plays no part); entries
    are counted in ``effects`` if the lead was ``released``."""
    state.seen[event_id] = t
    state.max_created_at = max(state.max_created_at, t)
    if state.created_at is None or t < state.created_at:
        # Only the earliest lead_created gives the lead its team: a later one (a re-import,
        # a second form) is a re-entry, not a reassignment, all the more as its ``team``
        # reads ``default`` when the producer left it out. Reassignments are stage changes.
        replaced = (state.created_at, state.team)
        if replaced in state.teams:
            state.teams.remove(replaced)
        replaced_owner = next((o for o in state.owners if o[0] == state.created_at), None)
        if replaced_owner is not None:
            state.owners.remove(replaced_owner)
        state.created_at = t
        state.source = source
        state.team = team
        state.campaign = campaign
        insort(state.teams, (t, team))
        if owner is not None:
            insort(state.owners, (t, owner))
    enter_stage(state, rules.lead_stage, t, released, effects)


def record_stage_changed(
    state: LeadState,
    event_id: str,
    t: float,
    to_stage: str,
    team: str | None,
    released: bool,
    effects: Effects,
    owner: str | None,
) -> None:
    """What a new ``stage_changed`` changes in ``state`` (as ``record_lead_created``)."""
    state.seen[event_id] = t
    state.max_changed_at = max(state.max_changed_at, t)
    if team is not None:
        insort(state.teams, (t, team))
    if owner is not None:
        insort(state.owners, (t, owner))
    enter_stage(state, to_stage, t, released, effects)
