"""Waiting for a consumer to catch up, with progress on stderr and the child's memory sampled.

A consumer group has caught up when its committed offsets equal the end offsets of its input
(read on the broker every 50 ms, through one kept admin client) *and* the consumer's own
count says it processed every message (read from the child only then, so the polling costs
the child nothing while it works). A child that exits, commits nothing new for ``stall_s``,
or counts more messages than the input holds, fails the wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.kafka import Offsets, committed_counter
from bench.procs import Child, ChildFailed
from stream.observability.scrape import ScrapeError

log = logging.getLogger(__name__)

# Completion is seen at most this late: a rate's end is the first poll that finds it.
_POLL_S = 0.05
_LOG_EVERY_S = 5.0


@dataclass
class CatchUp:
    """When the wait ended (monotonic seconds), the child's peak RSS seen and its trace."""

    done_at: float
    peak_rss_mb: float | None = None
    # (seconds since the wait began, committed messages, RSS in MiB) every ~5 s
    trace: list[tuple[float, int, float | None]] = field(default_factory=list)


async def wait_caught_up(
    *,
    bootstrap: str,
    group: str,
    ends: Offsets,
    child: Child,
    processed: Callable[[], Awaitable[float]],
    label: str,
    stall_s: float = 180.0,
) -> CatchUp:
    """Wait until ``group`` committed ``ends`` and ``processed()`` reached their total."""
    total = sum(ends.values())
    began = last_log = last_move = time.monotonic()
    last_done = log_done = -1
    result = CatchUp(done_at=began)
    async with committed_counter(bootstrap, group, ends) as committed:
        while True:
            child.check_alive()
            rss = child.memory_mb("VmRSS")
            if rss is not None:
                result.peak_rss_mb = max(rss, result.peak_rss_mb or 0.0)
            done = await committed()
            now = time.monotonic()
            if done != last_done:
                last_done, last_move = done, now
            if log_done < 0:  # rates are of this wait, not of what was committed before it
                log_done = done
            if done >= total:
                try:
                    count = await processed()
                except ScrapeError as exc:
                    log.debug("%s: not readable yet: %s", label, exc)
                    count = -1.0
                if count > total:
                    # More than was sent: something counts twice (or another producer wrote to
                    # the input), and no rate computed from ``total`` would be true.
                    raise ChildFailed(
                        f"{label}: processed {count:,.0f} messages, more than {total:,}"
                    )
                if count == total:
                    result.done_at = time.monotonic()
                    log.info("%s: caught up, %s messages", label, f"{total:,}")
                    return result
            if now - last_move > stall_s:
                raise ChildFailed(
                    f"{label}: no progress for {stall_s:.0f} s at {done:,}/{total:,}; "
                    f"log tail:\n{child.tail()}"
                )
            if now - last_log >= _LOG_EVERY_S:
                rate = (done - log_done) / (now - last_log)
                last_log, log_done = now, done
                result.trace.append((now - began, done, rss))
                rss_text = "-" if rss is None else f"{rss:.0f} MB"
                log.info(
                    "%s: %s/%s committed, %s/s, rss %s",
                    label,
                    f"{done:,}",
                    f"{total:,}",
                    f"{rate:,.0f}",
                    rss_text,
                )
            await asyncio.sleep(_POLL_S)


async def wait_healthy(child: Child, *, timeout_s: float, poll_s: float = 0.1) -> float:
    """Monotonic time at which ``/health`` first answered 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        child.check_alive()
        if await child.health() == 200:
            return time.monotonic()
        await asyncio.sleep(poll_s)
    raise ChildFailed(f"{child.name} not healthy within {timeout_s:.0f} s:\n{child.tail()}")
