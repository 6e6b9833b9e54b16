"""The synthetic funnel as a pure, seeded simulation: visits, leads and their stage changes.

Visits arrive as a Poisson process in event time. A visit turns into a lead with the profile's
rate; the lead's whole path (follow-up, MQL, SQL, opportunity, customer or disqualification) is
drawn when it is created and played out step by step, so the pending heap holds one entry per
live lead plus the few deliveries held back as duplicates or late (out-of-order) messages.
Event times are whole milliseconds. The output depends only on the seed, the profile, the start,
the rate and the horizon, not on how often :meth:`TrafficGenerator.advance` is called.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import time
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from random import Random

from stream.config.topics import TopicNames
from stream.generate.noise import ValidEvent, malformed_variant
from stream.generate.paths import LeadPlanner, cumulative, log_uniform_ms
from stream.generate.profile import DEFAULT_PROFILE, TrafficProfile

_NEVER = 1 << 62  # a time in ms that no event reaches
_RECENT_VISITORS = 4096  # how many visitor ids a returning visitor is drawn from


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One Kafka record to produce: topic, key and value bytes, delivery time (epoch seconds).

    ``timestamp`` is when the message is delivered in the simulation: the event time, or later
    for a duplicate re-sent late or an out-of-order delivery.
    """

    topic: str
    key: bytes
    value: bytes
    timestamp: float


class _Lead:
    """A live lead: its ids and the remaining steps ``(occurred_ms, to_stage)`` of its path."""

    __slots__ = ("campaign", "lead_id", "owner", "source", "stage", "steps", "team", "visitor_id")

    def __init__(
        self,
        lead_id: str,
        visitor_id: str,
        source: str,
        campaign: str,
        team: str,
        owner: str,
        steps: list[tuple[int, str]],
    ) -> None:
        self.lead_id = lead_id
        self.visitor_id = visitor_id
        self.source = source  # JSON-encoded
        self.campaign = campaign  # a JSON fragment: "" or ',"campaign":"..."'
        self.team = team
        self.owner = owner
        self.steps = steps  # reversed: the next step is last
        self.stage = "lead"


class TrafficGenerator:
    """A stateful, seeded traffic source: :meth:`advance` emits what is due up to a time.

    ``visits_per_s`` is the visit rate in event time; visits start at ``start`` and, if ``until``
    is given, stop there, and no event after ``until`` is scheduled. Messages come out in
    delivery order. Memory stays bounded: one heap entry per live lead, a few held-back
    deliveries, and a fixed ring of recent visitor ids.
    """

    def __init__(
        self,
        seed: int,
        profile: TrafficProfile,
        topics: TopicNames,
        *,
        start: float,
        visits_per_s: float,
        until: float | None = None,
    ) -> None:
        if not visits_per_s > 0:
            raise ValueError(f"visits_per_s must be positive, got {visits_per_s}")
        self.profile = profile
        self.topics = topics
        self._rng = Random(seed)
        self._start_ms = math.ceil(start * 1000)
        self._until_ms = _NEVER if until is None else math.floor(until * 1000)
        self._mean_gap_ms = 1000.0 / visits_per_s
        self._heap: list[tuple[int, int, OutMessage | _Lead]] = []
        self._seq = itertools.count()
        self._recent: list[str] = []
        self._minute = -1
        self._minute_prefix = ""
        p = profile
        self._sources = [_json(name) for name, _ in p.sources]
        self._source_cum = cumulative([w for _, w in p.sources])
        by_source = dict(p.campaigns)
        self._campaigns = [
            [f',"campaign":{_json(c)}' for c in by_source.get(name, ())] for name, _ in p.sources
        ]
        self._pages = [_json(page) for page, _ in p.pages]
        self._page_cum = cumulative([w for _, w in p.pages])
        self._form_pages = [_json(page) for page in p.form_pages]
        self._teams = [_json(team) for team, _ in p.teams]
        self._team_cum = cumulative([w for _, w in p.teams])
        self._malformed_kinds = [kind for kind, _ in p.malformed_mix]
        self._malformed_cum = cumulative([w for _, w in p.malformed_mix])
        self._planner = LeadPlanner(p, self._rng)
        self._noise_dup = p.malformed + p.duplicates
        self._noise_late = self._noise_dup + p.out_of_order
        self._clock_ms = float(self._start_ms)
        self._next_visit_ms = self._start_ms
        self._draw_next_visit()

    # -- public ---------------------------------------------------------------------------

    def advance(self, to: float) -> list[OutMessage]:
        """Every message whose delivery time is at or before ``to`` (epoch seconds), in order."""
        return list(self.iter_until(to))

    def iter_until(self, to: float) -> Iterator[OutMessage]:
        """Like :meth:`advance`, lazily; stopping early leaves the generator consistent."""
        return self._emit(math.floor(to * 1000))

    def drain(self) -> Iterator[OutMessage]:
        """Stop new visits and emit everything pending: the live leads' remaining steps and the
        held-back deliveries, in delivery order (event times may pass the last ``advance``)."""
        self._next_visit_ms = _NEVER
        return self._emit(_NEVER - 1)

    @property
    def pending(self) -> int:
        """Heap entries held: live leads plus held-back deliveries."""
        return len(self._heap)

    # -- simulation -----------------------------------------------------------------------

    def _emit(self, to_ms: int) -> Iterator[OutMessage]:
        heap = self._heap
        while True:
            if heap and heap[0][0] <= self._next_visit_ms:
                if heap[0][0] > to_ms:
                    return
                item = heapq.heappop(heap)[2]
                out = item if isinstance(item, OutMessage) else self._lead_step(item)
            else:
                if self._next_visit_ms > to_ms:
                    return
                out = self._visit(self._next_visit_ms)
                self._draw_next_visit()
            if out is not None:
                yield out

    def _draw_next_visit(self) -> None:
        self._clock_ms += self._rng.expovariate(1.0) * self._mean_gap_ms
        nxt = int(self._clock_ms)
        self._next_visit_ms = nxt if nxt <= self._until_ms else _NEVER

    def _visit(self, t_ms: int) -> OutMessage | None:
        rng = self._rng
        r = rng.random
        p = self.profile
        recent = self._recent
        if recent and r() < p.returning_visitors:
            visitor_id = recent[int(r() * len(recent))]
        else:
            visitor_id = f"v-{rng.getrandbits(64):016x}"
            if len(recent) < _RECENT_VISITORS:
                recent.append(visitor_id)
            else:
                recent[int(r() * _RECENT_VISITORS)] = visitor_id
        s = bisect(self._source_cum, r())
        source = self._sources[s]
        campaigns = self._campaigns[s]
        campaign = (
            campaigns[int(r() * len(campaigns))] if campaigns and r() < p.campaign_share else ""
        )
        converts = r() < p.visit_to_lead
        if converts:
            page = self._form_pages[int(r() * len(self._form_pages))]
        else:
            page = self._pages[bisect(self._page_cum, r())]
        event_id = self._uuid()
        occurred_at = self._format(t_ms)
        value = (
            f'{{"event_id":"{event_id}","type":"visit","schema_version":1,'
            f'"occurred_at":"{occurred_at}","visitor_id":"{visitor_id}",'
            f'"source":{source}{campaign},"page":{page}}}'
        )
        if converts:
            self._create_lead(t_ms, visitor_id, source, campaign)
        return self._deliver(self.topics.visits, visitor_id, value, "visit", event_id, t_ms)

    def _create_lead(self, visit_ms: int, visitor_id: str, source: str, campaign: str) -> None:
        rng = self._rng
        p = self.profile
        t0 = visit_ms + log_uniform_ms(rng, p.lead_form_delay_s)
        team_index = bisect(self._team_cum, rng.random())
        owner = f"rep-{team_index * p.reps_per_team + 1 + int(rng.random() * p.reps_per_team)}"
        steps = [(t, stage) for t, stage in self._planner.plan(t0) if t <= self._until_ms]
        if not steps:
            return
        steps.reverse()
        lead = _Lead(
            f"l-{rng.getrandbits(64):016x}",
            visitor_id,
            source,
            campaign,
            self._teams[team_index],
            owner,
            steps,
        )
        heapq.heappush(self._heap, (steps[-1][0], next(self._seq), lead))

    def _lead_step(self, lead: _Lead) -> OutMessage | None:
        t_ms, stage = lead.steps.pop()
        event_id = self._uuid()
        occurred_at = self._format(t_ms)
        if stage == "lead":
            topic = self.topics.leads
            kind = "lead_created"
            value = (
                f'{{"event_id":"{event_id}","type":"lead_created","schema_version":1,'
                f'"occurred_at":"{occurred_at}","lead_id":"{lead.lead_id}",'
                f'"visitor_id":"{lead.visitor_id}","source":{lead.source}{lead.campaign},'
                f'"team":{lead.team},"owner":"{lead.owner}"}}'
            )
        else:
            topic = self.topics.transitions
            kind = "stage_changed"
            extra = ""
            if self._rng.random() < self.profile.team_on_transition:
                extra = f',"team":{lead.team}'
            if stage != "mql":  # MQLs are scored by marketing; every other step is a sales rep's
                extra += f',"owner":"{lead.owner}"'
            value = (
                f'{{"event_id":"{event_id}","type":"stage_changed","schema_version":1,'
                f'"occurred_at":"{occurred_at}","lead_id":"{lead.lead_id}",'
                f'"from_stage":"{lead.stage}","to_stage":"{stage}"{extra}}}'
            )
            lead.stage = stage
        if lead.steps:
            heapq.heappush(self._heap, (lead.steps[-1][0], next(self._seq), lead))
        return self._deliver(topic, lead.lead_id, value, kind, event_id, t_ms)

    # -- delivery noise -------------------------------------------------------------------

    def _deliver(
        self, topic: str, key: str, value: str, kind: str, event_id: str, t_ms: int
    ) -> OutMessage | None:
        """The message to emit now, or ``None`` when its delivery is held back; a duplicate,
        late copy or malformed sibling goes to the heap."""
        u = self._rng.random()
        if u >= self._noise_late:
            return OutMessage(topic, key.encode(), value.encode(), t_ms / 1000)
        p = self.profile
        if u < p.malformed:
            event = ValidEvent(topic, key, value, kind, event_id, self._format(t_ms))
            bad = self._malformed(event, t_ms)
            self._hold(OutMessage(*bad, t_ms / 1000), t_ms)
            return OutMessage(topic, key.encode(), value.encode(), t_ms / 1000)
        if u < self._noise_dup:
            message = OutMessage(topic, key.encode(), value.encode(), t_ms / 1000)
            later = 0 if self._rng.random() < 0.5 else self._uniform_ms(p.duplicate_latest_s)
            self._hold(
                OutMessage(topic, message.key, message.value, (t_ms + later) / 1000), t_ms + later
            )
            return message
        late = t_ms + self._uniform_ms(p.out_of_order_latest_s)
        self._hold(OutMessage(topic, key.encode(), value.encode(), late / 1000), late)
        return None

    def _malformed(self, event: ValidEvent, t_ms: int) -> tuple[str, bytes, bytes]:
        r = self._rng.random
        kind = self._malformed_kinds[bisect(self._malformed_cum, r())]
        prefix = "v-" if event.type == "visit" else "l-"
        topic, key, value = malformed_variant(
            kind,
            event,
            topics=self.topics,
            choice=r(),
            new_event_id=self._uuid(),
            new_id=f"{prefix}{self._rng.getrandbits(64):016x}",
            future_occurred_at=self._format(t_ms + int(self.profile.future_skew_s * 1000)),
        )
        return topic, key.encode(), value

    def _hold(self, message: OutMessage, due_ms: int) -> None:
        heapq.heappush(self._heap, (due_ms, next(self._seq), message))

    # -- helpers --------------------------------------------------------------------------

    def _uniform_ms(self, high_s: float) -> int:
        """A uniform delay in ``[1 s, high_s)``, as whole milliseconds."""
        return int((1.0 + (high_s - 1.0) * self._rng.random()) * 1000)

    def _uuid(self) -> str:
        """A version-4 UUID string drawn from the seeded RNG (``uuid.uuid4`` is not seeded)."""
        h = f"{(self._rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _format(self, t_ms: int) -> str:
        """RFC 3339 UTC with milliseconds (``2026-11-27T15:04:05.123Z``), cached per minute."""
        minute, rest = divmod(t_ms, 60_000)
        if minute != self._minute:
            self._minute = minute
            self._minute_prefix = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return f"{self._minute_prefix}{rest // 1000:02d}.{rest % 1000:03d}Z"


_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID_SET = (0x4 << 76) | (0x2 << 62)


def _json(text: str) -> str:
    return json.dumps(text)


def generate_messages(
    *,
    seed: int,
    start: float,
    end: float,
    rate_per_s: float | None = None,
    count: int | None = None,
    profile: TrafficProfile = DEFAULT_PROFILE,
    topics: TopicNames,
) -> Iterator[OutMessage]:
    """The messages of the event-time window ``[start, end]`` (epoch seconds), in delivery order.

    ``rate_per_s`` is the approximate number of messages (all topics) per second of event time;
    without it, the rate is sized so that the window holds about ``count`` messages. With
    ``count``, the stream stops after that many. Every event's ``occurred_at`` lies within the
    window: a lead's steps that would fall after ``end`` are not emitted. Deliveries held back
    (late duplicates, out-of-order messages) of events within the window come out at the end.
    """
    if not end > start:
        raise ValueError(f"end must be after start, got start={start} end={end}")
    if count is not None and count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if rate_per_s is None:
        if count is None:
            raise ValueError("give rate_per_s or count")
        # A little more than needed: leads near the end are cut short, so the window
        # holds slightly fewer messages than the steady state.
        rate_per_s = max(count, 1) * _COUNT_HEADROOM / (end - start)
    generator = TrafficGenerator(
        seed,
        profile,
        topics,
        start=start,
        visits_per_s=rate_per_s / profile.messages_per_visit(),
        until=end,
    )
    messages = _window(generator, end)
    if count is None:
        return messages
    return itertools.islice(messages, count)


_COUNT_HEADROOM = 1.05


def _window(generator: TrafficGenerator, end: float) -> Iterator[OutMessage]:
    yield from generator.iter_until(end)
    yield from generator.drain()  # only held-back deliveries remain: nothing was planned after end
