"""Bounds on one key's state, whatever the traffic of that key.

A state is written whole to its table's changelog every time it changes, and Kafka refuses a
record above the broker's ``message.max.bytes`` (1,048,588 bytes by default): a key whose state
grew with its traffic (an uptime monitor or a crawler with a fixed visitor id, a CRM loop
moving one lead back and forth) would stop the worker. So each state keeps at most:

- ``MAX_VISIT_IDS`` duplicate-detection ids per visitor and ``MAX_LEAD_IDS`` per lead, each
  a fixed-size digest of the ``event_id`` (``dedupe_key``); the ids applied longest ago are
  forgotten first, and counted (``funnel_dedupe_ids_forgotten_total``);
- per lead and stage, the first entry time and the ``MAX_STAGE_TIMES - 1`` latest re-entry
  times, with the number of re-entry times forgotten (so re-entry counts stay exact);
- per lead, the ``MAX_TEAM_ASSIGNMENTS - 1`` earliest team assignments and the latest, and
  likewise its owners.

What that costs in exactness is in docs/semantics.md ("Bounded state"). The largest states
these allow are measured in tests/stream/core/test_bounds.py against Kafka's default limit.
"""

from __future__ import annotations

import binascii
import hashlib
import math
from typing import Any, Final

from stream.core.leads import LeadState

MAX_VISIT_IDS = 2_000
MAX_LEAD_IDS: Final = 64
MAX_STAGE_TIMES: Final = 16
MAX_TEAM_ASSIGNMENTS: Final = 64
# Kafka's default message.max.bytes (a record batch of one record); every state must stay
# far below it.
KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588


def dedupe_key(event_id: str) -> str:
    """The id a state keeps for ``event_id``: 64 bits of its BLAKE2b digest, 11 characters.

    An ``event_id`` may be 128 characters of any Unicode (up to 768 bytes of JSON with
    escapes); the digest has a fixed size. Two different ids share a digest with probability
    2**-64 per pair: a state of 2,000 ids takes a new visit for a duplicate about once in
    9 * 10**15 visits.
    """
    try:
        raw = event_id.encode()  # the usual case: the same bytes, without the error handler
    except UnicodeEncodeError:  # a lone surrogate, from a JSON escape
        raw = event_id.encode("utf-8", "surrogatepass")
    hasher = _new_blake2b()  # a copy of an empty one: cheaper than building it from arguments
    hasher.update(raw)
    # base64.urlsafe_b64encode without its two Python wrappers; the newline it would drop
    # goes with the padding (a keyword argument costs more than the byte)
    return _b2a_base64(hasher.digest())[:11].translate(_URLSAFE).decode("ascii")


# Final: the compiled module reads them as constants, not from its globals per call.
_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")
_new_blake2b: Final = hashlib.blake2b(digest_size=8).copy
_b2a_base64: Final = binascii.b2a_base64


_NEVER: Final = math.inf


def earliest(times: dict[Any, float]) -> float:
    """The earliest of the times a state keeps per id (``times.values()``), infinity when it
    keeps none: what decides whether anything falls before a duplicate horizon.

    A loop over the values compiles to a few instructions each; ``min`` is a call into the
    builtins (some 8,000 instructions with its ``default`` keyword, for the one or two times
    a state usually holds), and it ran for nearly every event of a known key.
    """
    first = _NEVER
    for t in times.values():
        if t < first:
            first = t
    return first


def forget_old_ids(state: LeadState, horizon_start: float) -> None:
    """Drop event ids older than the duplicate horizon, keeping the state bounded."""
    seen = state.seen
    if earliest(seen) >= horizon_start:
        return  # the common case
    old = [eid for eid, t in seen.items() if t < horizon_start]
    for eid in old:
        del seen[eid]


def bound_lead(state: LeadState, horizon_start: float) -> int:
    """Forget the event ids older than ``horizon_start`` (the duplicate horizon), then trim
    ``state`` to the bounds above; returns how many ids the bounds forgot (those past the
    horizon are not counted)."""
    forget_old_ids(state, horizon_start)
    forgotten = 0
    seen = state.seen
    while len(seen) > MAX_LEAD_IDS:
        del seen[next(iter(seen))]  # insertion order: the id applied longest ago
        forgotten += 1
    for stage, times in state.entries.items():
        extra = len(times) - MAX_STAGE_TIMES
        if extra > 0:
            # Keep the first entry (it counts) and the latest re-entries (the lead's clock).
            del times[1 : 1 + extra]
            state.dropped_reentries[stage] = state.dropped_reentries.get(stage, 0) + extra
    for assignments in (state.teams, state.owners):
        extra = len(assignments) - MAX_TEAM_ASSIGNMENTS
        if extra > 0:
            del assignments[MAX_TEAM_ASSIGNMENTS - 1 : MAX_TEAM_ASSIGNMENTS - 1 + extra]
    return forgotten
