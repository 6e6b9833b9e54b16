"""The state gauges of metrics.md, read from the funnel at scrape time.

Window counts, open leads and their follow-up clocks, leads per stage, watermarks and consumer
lag describe state, not events: ``StateCollector`` reads them from the ``Funnel`` when
Prometheus scrapes, so they are exact and cover only the partitions this worker owns. The
counters and histograms that events move are ``stream.observability.metrics.FunnelMetrics``,
whose bounded ``team`` label and ``warn_before`` list these gauges share.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stream.core.funnel import Funnel
from stream.observability.metrics import FunnelMetrics


class StateCollector(Collector):
    """Gauges read from the funnel's state at scrape time: exact, and only for owned partitions."""

    def __init__(
        self,
        funnel: Funnel,
        metrics: FunnelMetrics,
        watermarks: Mapping[str, float],
        lag: Callable[[], Mapping[tuple[str, int], int]],
    ) -> None:
        self._funnel = funnel
        self._metrics = metrics
        self._watermarks = watermarks
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        """Yield the state gauges of metrics.md."""
        windows = GaugeMetricFamily(
            "funnel_window_stage_entries",
            "Exact event-time entries per stage in the current and previous window.",
            labels=["stage", "window", "period"],
        )
        for (stage, window, period), n in self._funnel.window_entries().items():
            windows.add_metric([stage, window, period], n)
        yield windows

        awaiting = GaugeMetricFamily(
            "funnel_leads_awaiting_followup", "Open leads whose clock runs.", labels=["team"]
        )
        overdue = GaugeMetricFamily(
            "funnel_leads_overdue", "Open leads past their deadline.", labels=["team"]
        )
        oldest = GaugeMetricFamily(
            "funnel_oldest_awaiting_followup_timestamp_seconds",
            "Clock start of the oldest open lead.",
            labels=["team"],
        )
        at_risk = GaugeMetricFamily(
            "funnel_leads_at_risk",
            "Open leads not yet past their deadline whose time left is at most `before`.",
            labels=["team", "before"],
        )
        befores = self._metrics.warn_before
        per_team: dict[str, list[float]] = {t: [0, 0, 0.0] for t in self._metrics.team.known}
        risk: Tally[tuple[str, str]] = Tally()
        for team, g in self._funnel.followup_gauges().items():
            label = self._metrics.team(team, count=0)
            row = per_team.setdefault(label, [0, 0, 0.0])
            row[0] += g.awaiting
            row[1] += g.overdue
            if g.oldest_clock_start is not None:
                row[2] = g.oldest_clock_start if not row[2] else min(row[2], g.oldest_clock_start)
            for before, n in g.at_risk.items():
                risk[(label, before)] += n
        for team, (n_awaiting, n_overdue, first) in sorted(per_team.items()):
            awaiting.add_metric([team], n_awaiting)
            overdue.add_metric([team], n_overdue)
            oldest.add_metric([team], first)
            for before in befores:
                at_risk.add_metric([team, before], risk[(team, before)])
        yield awaiting
        yield overdue
        yield oldest
        yield at_risk

        in_stage = GaugeMetricFamily(
            "funnel_leads_in_stage",
            "Leads whose current stage (the furthest funnel stage reached) is `stage`.",
            labels=["stage"],
        )
        stuck = GaugeMetricFamily(
            "funnel_leads_stuck",
            "Of those, the ones in it for longer than funnel.stuck_after.<stage>.",
            labels=["stage"],
        )
        for stage, (n_in, n_stuck) in self._funnel.stage_gauges().items():
            in_stage.add_metric([stage], n_in)
            stuck.add_metric([stage], n_stuck)
        yield in_stage
        yield stuck

        watermark = GaugeMetricFamily(
            "funnel_event_time_watermark_timestamp_seconds",
            "Highest occurred_at applied.",
            labels=["topic"],
        )
        for topic, t in sorted(self._watermarks.items()):
            watermark.add_metric([topic], t)
        yield watermark

        lag = GaugeMetricFamily(
            "funnel_consumer_lag_messages",
            "High watermark minus committed offset, for partitions this worker owns.",
            labels=["topic", "partition"],
        )
        for (topic, partition), n in sorted(self._lag().items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
