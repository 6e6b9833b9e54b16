"""A lead's status at a given clock: released or held, its follow-up, breach and warnings.

``stream.core.leads`` records what each event changes in a lead's ``LeadState``; this module
derives from such a state what the funnel reports about it at a clock (``lead_status``): is it
released (its ``lead_created`` arrived, or the orphan hold passed), was it followed up and
within the SLA, is it open (``OpenLead``: its clock runs), breached, or at risk. Nothing here is
stored. The funnel compares a lead's status before and after an event or a clock's move
(``new_status``, ``status_effects``) and counts the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from stream.core.effects import Effects, FollowUp
from stream.core.leads import UNKNOWN_SOURCE, LeadState
from stream.core.rules import FunnelRules


@dataclass(frozen=True, slots=True)
class OpenLead:
    """A lead whose follow-up clock runs: who owns it, since when, and when it breaches.

    ``breach_team`` owns the lead at ``breach_at``: a breach is that team's, whatever
    reassignment (stamped later) has been read by the time the clock passes it. Likewise
    ``warnings`` holds, per ``warn_before`` label, the instant the lead becomes at risk and
    the team that owns it then.
    """

    team: str
    clock_start: float
    breach_at: float
    breach_team: str
    warnings: tuple[tuple[str, float, str], ...] = ()
    owner: str | None = None  # the rep who owns the lead now

    def __init__(
        self,
        team: str,
        clock_start: float,
        breach_at: float,
        breach_team: str,
        warnings: tuple[tuple[str, float, str], ...] = (),
        owner: str | None = None,
    ) -> None:
        # Written out, not generated: stream/compiled.py ("__init__") says why.
        object.__setattr__(self, "team", team)
        object.__setattr__(self, "clock_start", clock_start)
        object.__setattr__(self, "breach_at", breach_at)
        object.__setattr__(self, "breach_team", breach_team)
        object.__setattr__(self, "warnings", warnings)
        object.__setattr__(self, "owner", owner)


def released_counts(state: LeadState, effects: Effects) -> None:
    """Count every stage the lead has entered, at the moment it is released."""
    source = state.source if state.source is not None else UNKNOWN_SOURCE
    for stage, times in state.entries.items():
        effects.entries.append((stage, source))
        effects.reentries.extend([stage] * (len(times) - 1 + state.dropped_reentries.get(stage, 0)))


@dataclass(frozen=True, slots=True)
class LeadStatus:
    """Facts derived from a lead's state at a given clock; effects are their changes."""

    released: bool
    followup: FollowUp | None
    breached: bool
    open: OpenLead | None
    held_until: float | None
    breach_team: str | None = None  # the team at the deadline, once the clock has started
    # (warn_before label, team at that instant) of each warning the lead has reached: with no
    # follow-up, once the clock passed the instant; followed up, if that came after it.
    warned: tuple[tuple[str, str], ...] = ()
    breach_owner: str | None = None  # the rep at the deadline, once the clock has started

    def __init__(
        self,
        released: bool,
        followup: FollowUp | None,
        breached: bool,
        open: OpenLead | None,
        held_until: float | None,
        breach_team: str | None = None,
        warned: tuple[tuple[str, str], ...] = (),
        breach_owner: str | None = None,
    ) -> None:
        # Written out, not generated: stream/compiled.py ("__init__") says why.
        object.__setattr__(self, "released", released)
        object.__setattr__(self, "followup", followup)
        object.__setattr__(self, "breached", breached)
        object.__setattr__(self, "open", open)
        object.__setattr__(self, "held_until", held_until)
        object.__setattr__(self, "breach_team", breach_team)
        object.__setattr__(self, "warned", warned)
        object.__setattr__(self, "breach_owner", breach_owner)


# The status of a lead with no state yet (``lead_status`` of an empty ``LeadState``).
UNSEEN: Final = LeadStatus(False, None, False, None, None)


def lead_status(
    state: LeadState, rules: FunnelRules, clock: float, hold_clock: float | None = None
) -> LeadStatus:
    """Derive the lead's follow-up and breach status at ``clock`` (event or wall time).

    ``hold_clock`` (default: ``clock``) decides whether held stage changes waited out the
    orphan hold; the worker passes its partition's event clock, so that a catch-up in wall
    mode does not release stage changes whose lead is simply not read yet.

    Nothing here is stored: the follow-up is known once the lead is released and both clock
    ends are known; the lead is breached when its follow-up came after the deadline, or when
    the clock passed the deadline with no follow-up.
    """
    released = state.is_released(rules, clock if hold_clock is None else hold_clock)
    if not released:
        held = state.held_since()
        return LeadStatus(
            False, None, False, None, None if held is None else held + rules.orphan_hold
        )
    start = state.clock_start(rules)
    if start is None:
        return LeadStatus(True, None, False, None, None)
    stop = state.clock_stop(rules)
    breach_at = rules.deadline(start)
    breach_team = state.team_at(breach_at)
    breach_owner = state.owner_at(breach_at)
    if stop is None:
        opened = _opened(state, rules, start, breach_at, breach_team)
        warned = tuple([(label, team) for label, at, team in opened.warnings if clock > at])
        return LeadStatus(
            True, None, clock > breach_at, opened, None, breach_team, warned, breach_owner
        )
    labels = rules.warn_before
    times = rules.warning_times(start)
    wall = max(0.0, stop - start)
    business = None if rules.calendar is None else rules.calendar.business_seconds(start, stop)
    within = rules.sla_latency(wall, business) <= rules.followup_within
    followup = FollowUp(
        state.team_at(stop), wall, business, within, stop < start, state.owner_at(stop)
    )
    warned = tuple(  # as in _opened
        [(labels[i][0], state.team_at(at)) for i, at in enumerate(times) if stop > at]
    )
    return LeadStatus(
        True, followup, stop > breach_at, None, None, breach_team, warned, breach_owner
    )


def open_lead(state: LeadState, rules: FunnelRules) -> OpenLead | None:
    """The open clock of a lead that arrived (``lead_status(...).open``, whatever the clock)."""
    start = state.clock_start(rules)
    if start is None or state.clock_stop(rules) is not None:
        return None
    breach_at = rules.deadline(start)
    return _opened(state, rules, start, breach_at, state.team_at(breach_at))


def _opened(
    state: LeadState, rules: FunnelRules, start: float, breach_at: float, breach_team: str
) -> OpenLead:
    labels, times = rules.warn_before, rules.warning_times(start)
    # ``times`` has one instant per ``warn_before`` entry, in its order: indexed together,
    # as ``zip(..., strict=True)`` is a generic call in compiled code (a list, not a generator,
    # for the same reason).
    warnings = tuple([(labels[i][0], at, state.team_at(at)) for i, at in enumerate(times)])
    return OpenLead(
        state.current_team, start, breach_at, breach_team, warnings, state.current_owner
    )


def status_effects(
    before: LeadStatus, after: LeadStatus, state: LeadState, effects: Effects
) -> None:
    """Append what changed between two statuses of the same lead."""
    if after.released and not before.released:
        released_counts(state, effects)
    if after.followup is not None and before.followup is None:
        effects.followups.append(after.followup)
    if after.warned != before.warned:
        # A lead is at risk once per warning: counted the first time it reaches it.
        reached = {label for label, _ in before.warned}
        effects.warnings.extend(
            (team, label) for label, team in after.warned if label not in reached
        )
    if after.breached and not before.breached:
        # The team that owned the lead when the deadline passed, whichever event declares it.
        effects.breaches.append(after.breach_team or state.current_team)


def new_status(
    state: LeadState,
    rules: FunnelRules,
    clock: float,
    before: LeadStatus,
    effects: Effects,
    hold_clock: float | None = None,
) -> LeadStatus:
    """The status of a lead whose new event ``state`` records (``record_lead_created``,
    ``record_stage_changed``); what changed from ``before`` goes to ``effects``."""
    after = lead_status(state, rules, clock, hold_clock)
    status_effects(before, after, state, effects)
    return after
