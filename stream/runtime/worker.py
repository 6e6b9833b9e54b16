"""The Faust layer: topics, tables, agents, timers and web views around the funnel core.

One ``faust.App`` per worker process, built by ``Worker(settings)`` (the app's settings are
``stream.runtime.faustparts.faust_app``). The agents only classify messages, hand valid
events to ``Funnel`` (the plain-Python core) and export what it did; all state lives in two
Faust tables keyed like their source topics:

- ``lead_states`` (key ``lead_id``): every fact about a lead, with the ids of the events
  applied to it, so a replay after a crash is recognised and changes nothing;
- ``visitor_states`` (key ``visitor_id``): the visits of the duplicate horizon.

Each table write goes to the changelog partition of the event being processed, which is the
source partition of the key: state moves with its partition on a rebalance. Aggregates
(event-time window counts, open leads) are derived from these states and rebuilt after every
recovery, which is what keeps them exact after ``kill -9``.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn

import faust
from prometheus_client import CollectorRegistry, generate_latest

from schemas import TopicKind
from stream.config.funnel_rules import rules_from_settings
from stream.config.settings import Settings
from stream.config.topics import rerouted_topics
from stream.core.funnel import Funnel
from stream.kafka.offsets import topic_end_offsets
from stream.kafka.security import client_kwargs
from stream.observability.metrics import FORGOTTEN_IDS, REROUTED, FunnelMetrics
from stream.observability.state_gauges import StateCollector
from stream.observability.targets import register_targets
from stream.runtime.apply import apply_records
from stream.runtime.batching import WriteBackStore
from stream.runtime.deadletter import DeadLetters
from stream.runtime.faustparts import SESSION_TIMEOUT_S, StateTable, faust_app, rocksdb_options
from stream.runtime.leadsweb import (
    RETRY_AFTER_S,
    LeadQuery,
    LeadsUnavailable,
    group_answer,
    local_answer,
)
from stream.runtime.reroute import Reroutes, split_off_home
from stream.runtime.seam import transport
from stream.runtime.seam.fetch import located
from stream.runtime.seam.producer import wait_for_metadata

log = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"
# The cyclic collector's thresholds once the states are loaded: a young collection after
# 100,000 allocations instead of 700. A fetch keeps its thousands of records and events alive
# while it is handled, and each young collection walked them again: about a tenth of the
# worker's CPU (docs/performance.md, change 32). The hot path makes almost no cycles.
GC_THRESHOLDS = (100_000, 50, 100)
# Exit status when a batch cannot be completed (EX_IOERR: the usual cause is the state store).
BATCH_FAILED_EXIT = 74


class Worker:
    """Wires one ``Funnel`` to a Faust app: agents, tables, recovery, timers and web views."""

    def __init__(self, settings: Settings, session_timeout_s: float = SESSION_TIMEOUT_S) -> None:
        self.settings = settings
        self.session_timeout_s = session_timeout_s
        names = settings.topics
        inputs = names.kinds
        self.rerouted_topics = rerouted_topics(settings.app_id, names)
        # Every topic the fast path handles, and the input topic its outcomes are counted for.
        self.kinds: dict[str, TopicKind] = dict(inputs)
        self.input_of: dict[str, str] = {topic: topic for topic in inputs}
        for topic, internal in self.rerouted_topics.items():
            self.kinds[internal] = inputs[topic]
            self.input_of[internal] = topic
        self.stages = frozenset(settings.funnel.all_stages)
        self.ready = False
        self.app = self._create_app()
        app = self.app
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "value_serializer": "raw",
            "partitions": settings.partitions,
        }
        rerouted = self.rerouted_topics
        self.visits_topic = app.topic(names.visits, rerouted[names.visits], **raw)
        self.lead_topics = app.topic(
            names.leads,
            names.transitions,
            rerouted[names.leads],
            rerouted[names.transitions],
            **raw,
        )
        self.dead_letters = DeadLetters(
            app,
            names.dead_letter,
            settings.partitions,
            self.stop_uncommitted,
            rerouted=frozenset(rerouted.values()),
        )
        self.reroutes = Reroutes(app, rerouted, self.stop_uncommitted)
        state: dict[str, Any] = {
            "key_type": str,
            "partitions": settings.partitions,
        }
        self.lead_states = StateTable(app, name="lead_states", options=rocksdb_options(), **state)
        self.visitor_states = StateTable(
            app, name="visitor_states", options=rocksdb_options(), **state
        )
        app.tables.add(self.lead_states)
        app.tables.add(self.visitor_states)

        self.lead_store = WriteBackStore(self.lead_states, self.stop_uncommitted)
        self.visitor_store = WriteBackStore(self.visitor_states, self.stop_uncommitted)
        self.funnel = Funnel(
            rules_from_settings(settings), self.lead_store, self.visitor_store, settings.clock
        )
        # Visitor and lead states changed within a fetch are written once, after it
        # (_handle_records): a hot key costs one decode and encode per fetch.
        self.funnel.hold_visitor_states = True
        self.funnel.hold_lead_states = True
        self.registry = CollectorRegistry()
        self.metrics = FunnelMetrics(
            self.registry,
            stages=settings.funnel.all_stages,
            input_topics=names.inputs,
            teams=settings.labels.team,
            sources=settings.labels.source,
            max_values=settings.labels.max_values,
            business_hours=settings.sla.business_hours is not None,
            warn_before=settings.sla.warn_before,
            funnel_stages=settings.funnel.stages,
        )
        register_targets(self.registry, settings)
        self.watermarks: dict[str, float] = {}
        self.registry.register(
            StateCollector(self.funnel, self.metrics, self.watermarks, self.consumer_lag)
        )
        self._wire()

    def _create_app(self) -> faust.App:
        app = faust_app(self.settings, self.session_timeout_s)
        transport.attach(
            app,
            transport.WorkerHooks(
                batch_topics=frozenset(self.kinds),
                handle_batch=self.handle_records,
                backpressure=self._changelog_room,
                end_offsets=self._end_offsets,
                stop_uncommitted=self.stop_uncommitted,
            ),
        )
        return app

    # -- processing ------------------------------------------------------------------------

    def handle_records(self, fetch: Sequence[tuple[Any, Sequence[Any]]]) -> None:
        """Classify a fetch of input records, apply or dead-letter each, then write and count.

        Called by the consumer fast path (``stream.runtime.seam.transport``) with the new
        records of one fetch, per partition, without yielding to the event loop. Each changed
        state is written once; counters are updated once. The records are acknowledged only
        after this returns, and Faust commits offsets only after flushing what was produced
        (changelog, dead letters), so a crash in between replays them, which the states
        recognise. If the batch cannot be completed (the state store fails), the process stops
        before anything is committed.
        """
        try:
            self._handle_records(fetch)
        except Exception as exc:
            self.stop_uncommitted(exc)

    async def _changelog_room(self) -> None:
        await self.lead_store.wait_for_room()
        await self.visitor_store.wait_for_room()
        await self.dead_letters.wait_for_room()
        await self.reroutes.wait_for_room()

    async def _end_offsets(self, topic: str) -> dict[int, int]:
        s = self.settings
        return await topic_end_offsets(
            s.bootstrap_servers, topic, client_kwargs=client_kwargs(s.kafka)
        )

    def _handle_records(self, fetch: Sequence[tuple[Any, Sequence[Any]]]) -> None:
        funnel, watermarks, kinds, stages = self.funnel, self.watermarks, self.kinds, self.stages
        lead_store, visitor_store = self.lead_store, self.visitor_store
        input_of, partitions = self.input_of, self.settings.partitions
        outcomes: Counter[tuple[str, str]] = Counter()
        late_topics: Counter[str] = Counter()
        rejected: list[tuple[Any, str]] = []
        timestamps: list[float] = []
        now = time.time()  # for the future-timestamp check: one reading per fetch
        for tp, records in fetch:
            partition, kind = tp.partition, kinds[tp.topic]
            topic = input_of[tp.topic]  # the input topic, also for records moved home
            if topic == tp.topic:
                records, away = split_off_home(records, partition, partitions)
                if away:
                    self.reroutes.send(
                        topic, {home: [located(r, tp) for r in rs] for home, rs in away.items()}
                    )
                    outcomes[(topic, REROUTED)] += sum(map(len, away.values()))
            lead_store.partition = visitor_store.partition = partition
            # Visits go straight to the partition's view (Funnel.visit_applier); classify
            # gives only visits for a visits topic.
            apply: Callable[[Any, float], str] = (
                funnel.visit_applier(partition)
                if kind == "visits"
                else partial(funnel.apply, partition)
            )
            statuses: dict[str, int] = {}
            forgotten, were_rejected = funnel.forgotten_ids, len(rejected)
            late, watermark = apply_records(
                funnel,
                records,
                kind,
                apply,
                (topic, partition),
                stages,
                now,
                watermarks.get(topic, 0.0),
                rejected,
                statuses,
            )
            if len(rejected) > were_rejected:  # dead letters name where they were read
                rejected[were_rejected:] = [
                    (located(r, tp), why) for r, why in rejected[were_rejected:]
                ]
            if watermark:
                watermarks[topic] = watermark
            for status, n in statuses.items():
                outcomes[(topic, status)] += n
            if late:
                late_topics[topic] += late
            if funnel.forgotten_ids != forgotten:
                outcomes[(topic, FORGOTTEN_IDS)] += funnel.forgotten_ids - forgotten
            timestamps.extend([r.timestamp / 1000.0 for r in records])
        for lead_id, lead in funnel.take_held_leads().items():
            lead_store.partition = lead.partition
            lead_store[lead_id] = lead.encode()
        for visitor_id, state in funnel.take_held_visitors().items():
            visitor_store.partition = state.partition
            visitor_store[visitor_id] = state.encode()
        lead_store.flush()
        visitor_store.flush()
        # Outside a batch (timers) reads must search every partition's store.
        lead_store.partition = visitor_store.partition = None
        if rejected:
            self.dead_letters.send(rejected)
        self.metrics.record_batch(outcomes, late_topics, timestamps)
        self._export_effects()

    def stop_uncommitted(self, exc: Exception) -> NoReturn:
        """Stop the process at once because a batch could not be completed.

        A full or broken state directory (the store write fails) or a refused dead-letter
        send would otherwise crash the agent, and Faust acknowledges a crashed agent's
        events: their offsets would be committed with their effects lost. Exiting at once,
        as ``kill -9`` would, commits nothing more, so a restart replays the batch.
        """
        detail = " ".join(str(exc).split()) or type(exc).__name__
        sys.stderr.write(
            "funnel worker: stopping before the current batch is committed (it is replayed "
            f"on restart): {type(exc).__name__}: {detail}\n"
        )
        sys.stderr.flush()
        os._exit(BATCH_FAILED_EXIT)

    def _export_effects(self) -> None:
        effects = self.funnel.effects
        if effects:
            self.metrics.record_effects(effects)
            effects.clear()

    # -- ownership ---------------------------------------------------------------------------

    def owned_partitions(self) -> tuple[set[int], set[int]]:
        """Input partitions this worker owns now: (lead partitions, visit partitions)."""
        names = self.settings.topics
        actives = self.app.assignor.assigned_actives()
        leads = {tp.partition for tp in actives if tp.topic in (names.leads, names.transitions)}
        visits = {tp.partition for tp in actives if tp.topic == names.visits}
        return leads, visits

    async def on_recovered(self) -> None:
        """Tables are recovered: rebuild the aggregates of the owned partitions."""
        started = time.monotonic()
        # The changelog is written straight into the producer's queue (stream.runtime.batching),
        # which needs the topics' metadata first.
        for table in (self.lead_states, self.visitor_states):
            await wait_for_metadata(self.app, table.changelog_topic.get_topic_name())
        await self.dead_letters.refresh()
        leads, visits = self.owned_partitions()
        # A rebuild creates millions of long-lived objects (the open-lead index); the cyclic
        # garbage collector would scan them all again and again while they are made
        # (docs/performance.md, 10.), and at every full collection afterwards.
        # None of them is part of a cycle: build without it, then exempt them (gc.freeze).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self.funnel.rebuild(leads, visits)
        finally:
            if collecting:
                gc.enable()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        names = self.settings.topics
        for topic in names.inputs:
            kind = self.kinds[topic]
            views = [
                v
                for (k, _), v in self.funnel.views.items()
                if k == kind[:6] or (kind != "visits" and k == "leads")
            ]
            best = max((v.watermark for v in views), default=0.0)
            self.watermarks[topic] = max(self.watermarks.get(topic, 0.0), best)
        self._export_effects()
        self.ready = True
        log.info(
            "recovered lead_partitions=%s visit_partitions=%s seconds=%.2f dead_letter=%s",
            sorted(leads),
            sorted(visits),
            time.monotonic() - started,
            names.dead_letter,
        )

    async def on_revoked(self, revoked: set[Any]) -> None:
        """Partitions moved away: stop exporting them."""
        names = self.settings.topics
        leads = {tp.partition for tp in revoked if tp.topic in (names.leads, names.transitions)}
        visits = {tp.partition for tp in revoked if tp.topic == names.visits}
        self.funnel.revoke(leads, visits)

    # -- the lead list -----------------------------------------------------------------------

    def lead_list_ready(self) -> bool:
        """True when the views are those of the partitions owned now, recovered."""
        if not self.ready or self.app.rebalancing:
            return False
        leads, _ = self.owned_partitions()
        return leads == {p for kind, p in self.funnel.views if kind == "leads"}

    def lead_partitions_by_member(self) -> dict[str, set[int]]:
        """Each group member's web URL and the lead partitions it owns, from the assignment
        Faust shares with every member (the changelog partitions of ``lead_states``)."""
        changelog = self.lead_states.changelog_topic.get_topic_name()
        return {
            str(url): set(topics.get(changelog, ()))
            for url, topics in self.app.router.tables_metadata().items()
        }

    @property
    def own_url(self) -> str:
        return str(self.app.conf.canonical_url)

    @property
    def partition_count(self) -> int:
        return self.settings.partitions

    def consumer_lag(self) -> dict[tuple[str, int], int]:
        """High watermark minus committed offset for every owned input partition."""
        consumer = self.app.consumer
        assert isinstance(consumer, transport.BatchConsumer), type(consumer)
        lag: dict[tuple[str, int], int] = {}
        for tp in self.app.assignor.assigned_actives():
            if tp.topic not in self.kinds:
                continue
            high = consumer.highwater(tp)
            if high is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - (consumer.committed_offset(tp) or 0))
        return lag

    def tick(self) -> None:
        """Once a second: move the wall clock (breaches, orphan holds) and prune windows."""
        self.funnel.advance()
        self.funnel.prune()
        self._export_effects()

    # -- wiring ------------------------------------------------------------------------------

    def _wire(self) -> None:
        app, worker = self.app, self

        # The input topics are handled by the consumer fast path (stream.runtime.seam.transport):
        # the agents subscribe them (group membership, co-partitioned table assignment) and
        # never receive a message. One that did would have bypassed the funnel: stop before
        # Faust could commit past it.
        async def subscribe_only(stream: Any) -> None:
            async for event in stream.events():
                worker.stop_uncommitted(
                    RuntimeError(f"input reached an agent, not the fast path: {event.message.tp}")
                )

        app.agent(self.visits_topic, name="count_visits")(subscribe_only)
        app.agent(self.lead_topics, name="track_leads")(subscribe_only)

        @self.visitor_states.on_recover
        async def rebuild_aggregates() -> None:
            await worker.on_recovered()

        async def drop_revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
            await worker.on_revoked(revoked)

        app.on_partitions_revoked.connect(drop_revoked)  # type: ignore[arg-type]

        @app.timer(interval=1.0)
        async def advance_clock() -> None:
            worker.tick()

        @app.page("/metrics")
        async def metrics(view: Any, request: Any) -> Any:
            return view.bytes(generate_latest(worker.registry), content_type=METRICS_CONTENT_TYPE)

        @app.page("/leads")
        async def leads(view: Any, request: Any) -> Any:
            try:
                query = LeadQuery.parse(request.query)
            except ValueError as exc:
                return view.json({"error": str(exc)}, status=400)
            try:
                if query.scope == "group":
                    return view.json(await group_answer(worker, query))
                return view.json(local_answer(worker, query))
            except LeadsUnavailable as exc:
                return view.json(
                    {"error": str(exc)},
                    status=503,
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            except ValueError as exc:  # an unknown warning label
                return view.json({"error": str(exc)}, status=400)

        @app.page("/health")
        async def health(view: Any, request: Any) -> Any:
            if worker.ready and not app.rebalancing:
                return view.json({"status": "ok"})
            return view.json({"status": "starting"}, status=503)
