"""An event's time as the core counts it: its ``occurred_at`` in float seconds since the epoch.

``event_seconds(moment)`` is ``moment.timestamp()`` to the bit, computed once per event by the
worker (``stream/runtime/apply.py``), the reports and ``Funnel.apply``. It is compiled with the
core (stream/compiled.py): from an interpreted module it cost a frame per event besides the
arithmetic (docs/performance.md, 23. and 41.).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from pydantic_core import TzInfo

# The UTC ``TzInfo`` pydantic-core gives parsed timestamps, once met, and the epoch in it
# (Final: the compiled module keeps the list itself, not a lookup in its globals per call).
_utc_epoch: Final[list[Any]] = [None, None]

_EXACT_MICROSECONDS: Final = float(1 << 53)
"""Below this in magnitude (some 285 years either side of 1970) a count of microseconds is a
float exactly, and so is its quotient by 1,000,000 what ``timedelta.total_seconds()`` gives."""


def event_seconds(moment: datetime) -> float:
    """``moment.timestamp()``, at a fraction of the cost for the UTC datetimes pydantic parses.

    ``timestamp()`` asks the datetime's tzinfo (pydantic-core's ``TzInfo``) for its offset,
    a call into pydantic-core each time. pydantic-core gives every UTC timestamp (``Z`` or
    ``+00:00``; what producers write) the same ``TzInfo`` object, and two datetimes of the
    same tzinfo object are subtracted without asking it: the difference from the epoch,
    written in that tzinfo, is the ``timedelta`` ``timestamp()`` computes. Its whole
    microseconds divided by 1,000,000 is then the float ``timestamp()`` returns: Python's
    ``total_seconds()`` divides the same integer, and below 2**53 the float division of two
    exact floats rounds the same way, without the arbitrary-precision integers it builds.
    Any other offset or tzinfo goes through ``timestamp()``. tests/stream/core/test_eventtime.py
    compares both.
    """
    zone = moment.tzinfo
    utc, epoch = _utc_epoch
    if zone is not utc:
        if zone is None or type(zone) is not TzInfo or zone.utcoffset(None):
            return moment.timestamp()
        epoch = datetime(1970, 1, 1, tzinfo=zone)
        _utc_epoch[:] = (zone, epoch)
    since: timedelta = moment - epoch
    # The whole seconds fit the compiled integers' fast path (below 2**30 in magnitude for
    # either factor); times a million they would not, and an integer product past it costs
    # a Python long. A multiple of 1,000,000 (of 64) below 2**59 is a float exactly, so the
    # float product is exact, and so is the sum while below 2**53: the one rounding left is
    # the division, as in ``total_seconds()``. Past 2**53 the float sum may be rounded, but
    # not back below the bound: that case goes to ``total_seconds()`` as before.
    whole = since.days * 86_400 + since.seconds
    micros = float(whole) * 1_000_000.0 + float(since.microseconds)
    if -_EXACT_MICROSECONDS < micros < _EXACT_MICROSECONDS:
        return micros / 1_000_000.0
    seconds: float = since.total_seconds()
    return seconds
