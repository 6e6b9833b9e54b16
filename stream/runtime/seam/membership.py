"""Whether the consumer group still counts this worker a member: a lease the coordinator's
answers renew.

A worker whose process stood still longer than its session timeout (a paused virtual machine,
``SIGSTOP``, heavy swapping) has been dropped from the group, and its partitions given to
another worker, which went on from the committed offsets. When it runs again it does not know
yet: its consumer thread learns it from the next heartbeat's answer, a round trip later, while
its main loop goes on with a fetch taken before the pause. Written then, that fetch's states
would reach the changelog *after* the new owner's records for the same keys, older than them,
and whoever recovers those partitions from the changelog next (the new owner after a restart,
a third worker, this one when it gets them back) would take the older states for the newer
(docs/reliability.md, finding 6).

So the worker counts itself a member only until ``lease`` seconds after it *sent* the last
request the coordinator answered "yes, a member of this generation": a heartbeat answered
without error, or the SyncGroup that gave it its assignment. The coordinator drops a member
only after hearing nothing from it for the session timeout, or when it does not rejoin within
the rebalance timeout after a rebalance began; both start after that request reached it, so
the lease (the smaller of the two timeouts) ends before the coordinator can have dropped it. A
heartbeat answered "rebalancing" does not renew it: the member then has the rebalance timeout
to rejoin, counted from before that answer. The consumer thread heartbeats every quarter
session timeout, also while the main loop handles a long fetch, so a worker that is not stood
still keeps its lease.

Where this cannot reach: a pause that begins after the last check and before the changelog
leaves the process (the rest of the fetch's handling and one turn of the event loop). Only
transactional writes, which fence a dropped member's records, close that; the embedded broker
has no transactions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

# Kafka API keys of the requests whose answer says "a member of this generation".
HEARTBEAT = 12
SYNC_GROUP = 14
NO_ERROR = 0
UNKNOWN_MEMBER_ID = ""  # aiokafka's member id before a join and after the group refused it


class MembershipLost(Exception):
    """The group may have given this worker's partitions to another member."""


class Membership:
    """The lease of one consumer's group membership (``watch`` its coordinator first)."""

    def __init__(self) -> None:
        self._coordinator: Any = None
        self.lease_s = math.inf
        # time.monotonic() at which the last request answered "a member" was sent.
        self.confirmed_at = -math.inf

    def watch(self, coordinator: Any) -> None:
        """Renew the lease from ``coordinator``'s answers (an aiokafka ``GroupCoordinator``,
        before it joins); a consumer without a group (``None``) is always a member."""
        if coordinator is None:
            return
        self._coordinator = coordinator
        self.lease_s = (
            min(coordinator._session_timeout_ms, coordinator._rebalance_timeout_ms) / 1000
        )
        send: Callable[[Any], Awaitable[Any]] = coordinator._send_req

        async def send_and_renew(request: Any) -> Any:
            sent = time.monotonic()
            response = await send(request)
            if request.API_KEY in (HEARTBEAT, SYNC_GROUP) and response.error_code == NO_ERROR:
                self.confirmed_at = max(self.confirmed_at, sent)
            return response

        # Every request the coordinator sends goes through this method, the rebalance's
        # SyncGroup included (aiokafka 0.14); tests/stream/runtime/test_membership.py checks it.
        coordinator._send_req = send_and_renew

    def current(self) -> bool:
        """True while the group cannot have dropped this member."""
        coordinator = self._coordinator
        if coordinator is None:
            return True
        if coordinator.member_id == UNKNOWN_MEMBER_ID:
            return False
        return time.monotonic() < self.confirmed_at + self.lease_s

    def lost(self) -> MembershipLost:
        """The reason ``current()`` is False, for the worker's one-line stop message."""
        coordinator = self._coordinator
        if coordinator is not None and coordinator.member_id == UNKNOWN_MEMBER_ID:
            return MembershipLost("the group no longer knows this worker as a member")
        since = time.monotonic() - self.confirmed_at
        return MembershipLost(
            f"the group last confirmed this worker as a member {since:.1f} s ago, longer than "
            f"its session timeout ({self.lease_s:g} s): its partitions may be another's now"
        )
