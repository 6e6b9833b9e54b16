"""A report's duplicate detection for visits: the worker's answers, with memory bounded by the
duplicate horizon's traffic rather than by the number of visits read."""

from __future__ import annotations

import random

from schemas import Visit, classify
from stream.config.topics import TopicNames
from stream.core.bounds import MAX_VISIT_IDS
from stream.core.eventtime import event_seconds
from stream.core.funnel import Funnel
from stream.core.rules import FunnelRules
from stream.generate import generate_messages
from stream.kafka.partitioner import home_partition
from stream.report.visitors import GENERATIONS, RecentVisits
from tests.stream.core.scenario import visit

START = 1_795_000_000.0
DAY = 86400.0
HOUR = 3600.0
NAMES = TopicNames.from_prefix("visitors.")


def _worker_answers(rules: FunnelRules, visits: list[tuple[int, Visit]]) -> list[bool]:
    funnel = Funnel(rules, {}, {}, "event")
    return [funnel.apply(p, v, event_seconds(v.occurred_at)) == "applied" for p, v in visits]


def _report_answers(recent: RecentVisits, visits: list[tuple[int, Visit]]) -> list[bool]:
    return [
        recent.add(p, v.visitor_id, v.event_id, event_seconds(v.occurred_at)) for p, v in visits
    ]


def test_a_month_of_visits_holds_about_a_horizon_of_visitors() -> None:
    """30 days of generated visits with a 1-day horizon: the answers are the worker's, and
    the visitors held at once stay near one day's (plus a generation), far below the total."""
    rules = FunnelRules(dedupe_horizon=DAY)
    messages = generate_messages(
        seed=5, start=START, end=START + 30 * DAY, count=60_000, topics=NAMES
    )
    visits = []
    for m in messages:
        if m.topic == NAMES.visits:
            event = classify("visits", m.key, m.value, stages=(), now=2e9)
            if isinstance(event, Visit):
                visits.append((home_partition(m.key, 4), event))
    visits.sort(key=lambda item: item[0])  # partition order, as a report reads them
    recent = RecentVisits(rules.dedupe_horizon)
    answers = _report_answers(recent, visits)
    assert answers == _worker_answers(rules, visits)
    assert answers.count(False) > 100  # the generator's re-sent copies: duplicates
    visitors = len({v.visitor_id for _, v in visits})
    per_day = visitors / 30
    assert visitors > 30_000
    # One horizon and one generation of a day's visitors, with room for the busier days
    # (held without dropping, they would reach all 30 days' visitors).
    assert recent.held_most <= 2 * per_day * (1 + 1 / GENERATIONS)
    assert recent.held_most > 0.5 * per_day
    assert recent.held <= recent.held_most


def test_edge_cases_answer_as_the_worker() -> None:
    """Late visits (some before the horizon), copies of visits within the horizon, a visitor
    with more visits than the worker keeps ids for, returning visitors: the worker's answers."""
    rng = random.Random(3)
    horizon = 6 * HOUR
    rules = FunnelRules(dedupe_horizon=horizon)
    plan: list[tuple[int, Visit]] = []
    sent: list[tuple[str, str, float]] = []
    t = START
    for i in range(6000):
        t += rng.uniform(0, 60)
        roll = rng.random()
        if roll < 0.45:  # a bot: one visitor, more visits than MAX_VISIT_IDS in the horizon
            who, eid, at = "bot", f"b-{i}", t
        elif roll < 0.6 and (recent := [s for s in sent[-400:] if s[2] > t - horizon + 60]):
            who, eid, at = rng.choice(recent)  # a copy of a visit within the horizon
        elif roll < 0.65:  # a late visit, up to a day back
            who, eid, at = f"v-{rng.randrange(50)}", f"late-{i}", t - rng.uniform(0, DAY)
        else:
            who, eid, at = f"v-{rng.randrange(300)}", f"e-{i}", t
        sent.append((who, eid, at))
        plan.append((hash(who) % 2, visit(eid, who, at)))
    assert sum(1 for who, _, _ in sent if who == "bot") > MAX_VISIT_IDS
    recent = RecentVisits(rules.dedupe_horizon)
    answers = _report_answers(recent, plan)
    assert answers == _worker_answers(rules, plan)
    assert 100 < answers.count(False) < len(answers) - 100


def test_a_copy_sent_after_the_horizon_counts_again() -> None:
    """The one difference from the worker (docs/reports.md, "Memory"): a copy of a visit
    read once its partition's visits are more than the horizon past it, from a visitor not
    seen since, is a new visit for the report. The worker still holds that visitor's state
    and takes the copy for a duplicate."""
    rules = FunnelRules(dedupe_horizon=DAY)
    plan = [
        (0, visit("e-1", "v-1", START)),
        (0, visit("e-1", "v-1", START)),  # a copy within the horizon: a duplicate
        (0, visit("e-2", "v-2", START + 2 * DAY)),
        (0, visit("e-1", "v-1", START)),  # a copy two days late
    ]
    assert _report_answers(RecentVisits(rules.dedupe_horizon), plan) == [True, False, True, True]
    assert _worker_answers(rules, plan) == [True, False, True, False]
