"""One lead's path through the funnel, drawn at once: follow-up, stage changes and their times.

The draws keep every rate of the profile exact in expectation, as each one is measured:
a stage's entries divided by the previous stage's entries, and the first follow-up (the first
transition into ``contacted``, ``sql``, ``opportunity``, ``customer`` or ``disqualified``)
against ``lead_created``. Only sales reps act on a lead after its creation, except for the
MQL, which marketing scores; so a lead that is never followed up can become an MQL, and
nothing more.
"""

from __future__ import annotations

import itertools
from bisect import bisect
from random import Random

from stream.generate.profile import DAY_S, HOUR_S, DelayRange, TrafficProfile

Step = tuple[int, str]  # (occurred_at in epoch ms, stage entered)

_NEVER_FOLLOWED_UP = 3  # index of the "never" follow-up bucket


def cumulative(weights: list[float]) -> list[float]:
    """Cumulative shares ending at exactly 1.0, for ``bisect`` on ``random()``."""
    total = sum(weights)
    cum = list(itertools.accumulate(w / total for w in weights))
    cum[-1] = 1.0
    return cum


def log_uniform_ms(rng: Random, bounds: DelayRange) -> int:
    """A log-uniform delay in ``[low, high)`` seconds, as whole milliseconds."""
    low, high = bounds
    return int(low * (high / low) ** rng.random() * 1000)


class LeadPlanner:
    """Draws lead paths from a profile with a given RNG (shared with the caller, for one seed)."""

    def __init__(self, profile: TrafficProfile, rng: Random) -> None:
        self.profile = profile
        self._rng = rng
        # Follow-up buckets: within 1 h, 1-24 h, after 24 h, never. Every SQL was followed up,
        # so leads that reach SQL draw from the first three only and the leads below SQL make
        # up for it, which keeps the overall mix and the conversion rates exact together.
        mix = profile.followup_mix()
        reached = profile.sql_share()
        touched = 1.0 - profile.followup_never
        self._touch_cum_sql = cumulative(list(mix[:3]) if touched > 0 else [1.0, 0.0, 0.0])
        if reached < 1.0:
            below = [m * (1.0 - reached / touched) if touched > 0 else 0.0 for m in mix[:3]]
            self._touch_cum_below = cumulative([*below, profile.followup_never])
        else:
            self._touch_cum_below = cumulative(list(mix))
        self._touch_ranges: list[DelayRange] = [
            (60.0, HOUR_S),
            (HOUR_S, DAY_S),
            (DAY_S, profile.followup_latest_s),
        ]

    def plan(self, t0: int) -> list[Step]:
        """The path of a lead created at ``t0`` (ms): ``[(t0, "lead"), ...]`` in time order."""
        p = self.profile
        rng = self._rng
        r = rng.random
        depth = 0  # 0 lead, 1 mql, 2 sql, 3 opportunity, 4 customer
        for rate in (p.lead_to_mql, p.mql_to_sql, p.sql_to_opportunity, p.opportunity_to_customer):
            if r() >= rate:
                break
            depth += 1
        reaches_sql = depth >= 2
        bucket = bisect(self._touch_cum_sql if reaches_sql else self._touch_cum_below, r())
        steps: list[Step] = [(t0, "lead")]
        if bucket == _NEVER_FOLLOWED_UP:
            if depth >= 1:
                steps.append((t0 + log_uniform_ms(rng, p.mql_delay_s), "mql"))
            return steps
        touch = t0 + log_uniform_ms(rng, self._touch_ranges[bucket])
        # A direct first touch is the next follow-up stage itself (qualified or disqualified
        # in the first call); marketing scored such a lead before that call.
        direct = r() < p.direct_first_touch
        mql = t0
        if depth >= 1:
            if direct:
                mql = t0 + int((touch - t0) * (0.05 + 0.9 * r()))
            else:
                mql = t0 + log_uniform_ms(rng, p.mql_delay_s)
            steps.append((mql, "mql"))
        if reaches_sql:
            self._plan_sales(steps, touch, mql, depth, direct)
        else:
            self._plan_stalled(steps, touch, mql, direct)
        steps.sort(key=_time)
        return steps

    def _plan_sales(
        self, steps: list[Step], touch: int, mql: int, depth: int, direct: bool
    ) -> None:
        """SQL and beyond: won as a customer, or lost (recorded as ``disqualified``)."""
        p = self.profile
        rng = self._rng
        if direct:
            last = touch
        else:
            steps.append((touch, "contacted"))
            last = max(touch, mql) + log_uniform_ms(rng, p.sql_delay_s)
        steps.append((last, "sql"))
        if depth >= 3:
            last += log_uniform_ms(rng, p.opportunity_delay_s)
            steps.append((last, "opportunity"))
        if depth >= 4:
            steps.append((last + log_uniform_ms(rng, p.customer_delay_s), "customer"))
        elif rng.random() < p.disqualify_lost:
            steps.append((last + log_uniform_ms(rng, p.disqualify_delay_s), "disqualified"))

    def _plan_stalled(self, steps: list[Step], touch: int, mql: int, direct: bool) -> None:
        """A followed-up lead that stays at lead or MQL: touched, maybe again, maybe dropped."""
        p = self.profile
        rng = self._rng
        disqualify = rng.random() < p.disqualify_stalled
        if direct and disqualify:
            steps.append((touch, "disqualified"))
            return
        steps.append((touch, "contacted"))
        last = max(touch, mql)
        if rng.random() < p.retouch:
            again = touch + log_uniform_ms(rng, p.retouch_delay_s)
            steps.append((again, "contacted"))
            last = max(last, again)
        if disqualify:
            steps.append((last + log_uniform_ms(rng, p.disqualify_delay_s), "disqualified"))


def _time(step: Step) -> int:
    return step[0]
