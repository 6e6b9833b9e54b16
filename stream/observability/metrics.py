"""Every Prometheus metric of the worker (metrics.md), built per registry.

``FunnelMetrics`` owns the metric objects and turns the core's ``Effects`` and the pipeline's
message outcomes into counter and histogram updates. Gauges that describe state (window
counts, open leads, watermarks, lag) are read from the ``Funnel`` at scrape time by
``stream.observability.state_gauges.StateCollector``, so they are exact and follow partition
ownership.
"""

from __future__ import annotations

import itertools
import math
import time
from bisect import bisect_left, bisect_right
from collections import Counter as Tally
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from schemas import REJECT_REASONS
from stream import __version__
from stream.core.effects import Effects
from stream.core.leads import DEFAULT_TEAM, UNKNOWN_SOURCE
from stream.observability.buckets import DELAY_BUCKETS, LATENCY_BUCKETS, STAGE_TIME_BUCKETS
from stream.observability.labels import LabelBound
from stream.runtime.seam.histogram import add_observations, bucket_bounds

# The outcome of a record read off its key's home partition and moved there (not consumed yet).
REROUTED = "rerouted"
# Duplicate-detection ids forgotten because a state reached its bound (stream.core.bounds).
FORGOTTEN_IDS = "forgotten_ids"


class FunnelMetrics:
    """The worker's counters and histograms, with bounded labels."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        stages: Iterable[str],
        input_topics: Iterable[str],
        teams: Iterable[str] | None,
        sources: Iterable[str] | None,
        max_values: int,
        business_hours: bool,
        warn_before: Iterable[str] = ("4h", "1h"),
        funnel_stages: Iterable[str] = (),
    ) -> None:
        # The *_created series double the exposition and no dashboard uses them. The switch is
        # process-wide and read when a metric is built, so it is set here rather than at import.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        r = registry
        self.warn_before = tuple(warn_before)  # labels, as written in sla.warn_before
        self.stage_entries = Counter(
            "funnel_stage_entries",
            "First entries into a stage (visits: every distinct visit).",
            ["stage", "source"],
            registry=r,
        )
        self.stage_reentries = Counter(
            "funnel_stage_reentries",
            "Repeated entries into a stage a lead had already reached.",
            ["stage"],
            registry=r,
        )
        self.followup_latency = Histogram(
            "funnel_followup_latency_seconds",
            "Lead to first follow-up, wall time.",
            ["team"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_time = Histogram(
            "funnel_stage_time_seconds",
            "Event time from a first entry into a funnel stage to the next funnel stage reached.",
            ["from_stage", "to_stage"],
            buckets=STAGE_TIME_BUCKETS,
            registry=r,
        )
        # The steps between consecutive funnel stages from the lead stage on, and the whole way.
        steps = tuple(funnel_stages)[1:]
        if len(steps) > 1:
            for from_stage, to_stage in (
                *itertools.pairwise(steps),
                (steps[0], steps[-1]),
            ):
                self.stage_time.labels(from_stage, to_stage)
        self.followup_business_latency = (
            Histogram(
                "funnel_followup_business_latency_seconds",
                "Lead to first follow-up, on the business-hours calendar.",
                ["team"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
            if business_hours
            else None
        )
        self.followups = Counter(
            "funnel_followups",
            "Follow-ups, split by whether they met the SLA.",
            ["team", "within_sla"],
            registry=r,
        )
        self.breaches = Counter(
            "funnel_followup_sla_breaches",
            "Deadlines that passed with no follow-up.",
            ["team"],
            registry=r,
        )
        self.warnings = Counter(
            "funnel_followup_sla_warnings",
            "Leads that entered at risk for `before` (time left at most `before`), once each.",
            ["team", "before"],
            registry=r,
        )
        self.clock_skew = Counter(
            "funnel_followup_clock_skew",
            "Follow-ups stamped before their lead.",
            ["team"],
            registry=r,
        )
        self.label_overflow = Counter(
            "funnel_label_overflow",
            "Label values replaced by 'other' (cardinality bound).",
            ["label"],
            registry=r,
        )
        self.consumed = Counter(
            "funnel_events_consumed", "Messages read from input topics.", ["topic"], registry=r
        )
        self.applied = Counter(
            "funnel_events_applied", "Messages that changed state.", ["topic"], registry=r
        )
        self.duplicate = Counter(
            "funnel_events_duplicate",
            "Messages whose event_id was already applied.",
            ["topic"],
            registry=r,
        )
        self.rejected = Counter(
            "funnel_events_rejected",
            "Messages sent to the dead-letter topic.",
            ["topic", "reason"],
            registry=r,
        )
        self.rerouted = Counter(
            "funnel_events_rerouted",
            "Records read from a partition other than their key's home partition, moved there.",
            ["topic"],
            registry=r,
        )
        self.dedupe_ids_forgotten = Counter(
            "funnel_dedupe_ids_forgotten",
            "Duplicate-detection ids forgotten within the horizon: their key's state was full.",
            ["topic"],
            registry=r,
        )
        self.late = Counter(
            "funnel_events_late",
            "Events older than the oldest retained window.",
            ["topic"],
            registry=r,
        )
        self.processing_delay = Histogram(
            "funnel_processing_delay_seconds",
            "Processing time minus Kafka record timestamp.",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.last_processed = Gauge(
            "funnel_last_processed_timestamp_seconds",
            "Wall time of the last processed message.",
            registry=r,
        )
        Gauge("funnel_build_info", "Build information.", ["version"], registry=r).labels(
            __version__
        ).set(1)

        overflow = self.label_overflow.labels
        self.team = LabelBound(
            "team",
            teams,
            max_values,
            lambda label, n: overflow(label).inc(n),
            always=[DEFAULT_TEAM],
        )
        self.source = LabelBound(
            "source",
            sources,
            max_values,
            lambda label, n: overflow(label).inc(n),
            always=[UNKNOWN_SOURCE],
        )
        for label in ("source", "campaign", "team"):
            overflow(label)
        self._export_known_series(tuple(stages), tuple(input_topics))

    def _export_known_series(self, stages: tuple[str, ...], topics: tuple[str, ...]) -> None:
        """Create every series the configuration makes known, at 0 (metrics.md)."""
        for stage in stages:
            self.stage_reentries.labels(stage)
        for topic in topics:
            for counter in (
                self.consumed,
                self.applied,
                self.duplicate,
                self.late,
                self.rerouted,
                self.dedupe_ids_forgotten,
            ):
                counter.labels(topic)
            for reason in REJECT_REASONS:
                self.rejected.labels(topic, reason)
        for team in self.team.known:
            self._team_series(team)

    def _team_series(self, team: str) -> None:
        self.followup_latency.labels(team)
        if self.followup_business_latency is not None:
            self.followup_business_latency.labels(team)
        self.followups.labels(team, "true")
        self.followups.labels(team, "false")
        self.breaches.labels(team)
        for before in self.warn_before:
            self.warnings.labels(team, before)
        self.clock_skew.labels(team)

    def record_effects(self, effects: Effects) -> None:
        """Export what the core did (then the caller clears ``effects``)."""
        # Entries come counted per (stage, source), the leads' first, each in the order first
        # seen (the order the label bound admits new sources in); each source is then
        # bounded, its overflow counted once per entry, and the counter updated once per
        # label pair.
        source = self.source
        per_label: Tally[tuple[str, str]] = Tally()
        for (stage, src), n in effects.entry_counts().items():
            per_label[(stage, source(src, count=n))] += n
        for (stage, label), n in per_label.items():
            self.stage_entries.labels(stage, label).inc(n)
        for stage, n in Tally(effects.reentries).items():
            self.stage_reentries.labels(stage).inc(n)
        for f in effects.followups:
            team = self.team(f.team)
            self.followup_latency.labels(team).observe(f.wall_seconds)
            if self.followup_business_latency is not None and f.business_seconds is not None:
                self.followup_business_latency.labels(team).observe(f.business_seconds)
            self.followups.labels(team, "true" if f.within_sla else "false").inc()
            if f.clock_skew:
                self.clock_skew.labels(team).inc()
        for team in effects.breaches:
            self.breaches.labels(self.team(team)).inc()
        for from_stage, to_stage, seconds in effects.stage_times:
            self.stage_time.labels(from_stage, to_stage).observe(seconds)
        for (team, before), n in Tally(effects.warnings).items():
            self.warnings.labels(self.team(team, count=n), before).inc(n)

    def record_batch(
        self,
        outcomes: Mapping[tuple[str, str], int],
        late: Mapping[str, int],
        record_timestamps: Iterable[float],
    ) -> None:
        """Count a batch: messages per (topic, outcome), late events per topic, delays.

        A record moved to its home partition (``REROUTED``) is counted as consumed where it
        is applied, duplicate or rejected, once: so ``consumed = applied + duplicate +
        rejected`` holds.
        """
        now = time.time()
        consumed: dict[str, int] = {}
        for (topic, outcome), n in outcomes.items():
            if outcome == REROUTED:
                self.rerouted.labels(topic).inc(n)
                continue
            if outcome == FORGOTTEN_IDS:
                self.dedupe_ids_forgotten.labels(topic).inc(n)
                continue
            consumed[topic] = consumed.get(topic, 0) + n
            if outcome == "applied":
                self.applied.labels(topic).inc(n)
            elif outcome == "duplicate":
                self.duplicate.labels(topic).inc(n)
            else:
                self.rejected.labels(topic, outcome).inc(n)
        for topic, n in consumed.items():
            self.consumed.labels(topic).inc(n)
        for topic, n in late.items():
            self.late.labels(topic).inc(n)
        observe_ages(self.processing_delay, now, record_timestamps)
        if consumed:
            self.last_processed.set(now)


def observe_ages(histogram: Histogram, now: float, timestamps: Iterable[float]) -> None:
    """``histogram.observe(now - t)`` for each of ``timestamps`` (ages below 0 as 0), with
    one update per bucket and no Python step per value.

    The timestamps are sorted (fetched records are already in order per partition) and each
    bucket's count is a bisection: an age is at most ``bound`` when its timestamp is at least
    ``now - bound``. The counts are added through the runtime seam
    (``stream.runtime.seam.histogram``), the one place that writes prometheus_client's
    internals.
    """
    stamps = sorted(timestamps)
    n = len(stamps)
    if not n:
        return
    bounds = bucket_bounds(histogram)
    per_bucket = [0] * len(bounds)
    counted = 0
    for i, bound in enumerate(bounds[:-1]):
        within = n - bisect_left(stamps, now - bound)
        if within > counted:
            per_bucket[i] = within - counted
            counted = within
    per_bucket[-1] = n - counted  # +Inf
    past = bisect_right(stamps, now)  # the rest lie ahead of ``now``: age 0
    add_observations(histogram, per_bucket, now * past - math.fsum(stamps[:past]))
