"""Targets on ``/metrics``: the north star and the SLA commitments, from the configuration.

``TargetsCollector`` exports, at every scrape, the gauges of metrics.md's "Targets" table so
dashboards can draw target lines next to the measured series:

- ``funnel_target_stage_entries{stage, period="month"}``: the reverse funnel's entries per
  month (``stream.planning.plan``), only when a revenue goal is set and every conversion rate is
  configured; the worker has no measured rates (``funnel plan`` measures them from the
  topics), so with a missing rate the series is absent rather than a guess;
- ``funnel_sla_commitment_stage_entries{stage, period="month"}``: ``[sla.marketing]``'s
  MQLs and SQLs per month, when above 0;
- ``funnel_sla_followup_seconds{team}``: the follow-up SLA, for every team of the
  allow-list and ``default`` (business seconds when ``[sla.business_hours]`` is set).

The values come from the frozen settings only, so they are computed once.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stream.config.settings import Settings
from stream.core.leads import DEFAULT_TEAM
from stream.planning.plan import reverse_funnel

__all__ = ["TargetsCollector", "register_targets"]

MONTH = "month"


class TargetsCollector(Collector):
    """The configuration's targets as gauges (metrics.md, "Targets")."""

    def __init__(self, settings: Settings) -> None:
        self._targets = _plan_targets(settings)
        marketing = settings.sla.marketing
        committed = {"mql": marketing.mql_per_month, "sql": marketing.sql_per_month}
        self._commitments = {
            stage: n for stage, n in committed.items() if n > 0 and stage in settings.funnel.stages
        }
        teams = settings.labels.team or ()
        self._teams = tuple(dict.fromkeys((*teams, DEFAULT_TEAM)))
        self._sla_seconds = settings.sla.followup_within

    def collect(self) -> Iterator[Metric]:
        """Yield the three target gauges."""
        target = GaugeMetricFamily(
            "funnel_target_stage_entries",
            "Entries needed per month to reach the revenue goal (reverse funnel).",
            labels=["stage", "period"],
        )
        for stage, n in self._targets.items():
            target.add_metric([stage, MONTH], n)
        yield target
        commitment = GaugeMetricFamily(
            "funnel_sla_commitment_stage_entries",
            "Marketing's committed deliveries per month.",
            labels=["stage", "period"],
        )
        for stage, n in self._commitments.items():
            commitment.add_metric([stage, MONTH], n)
        yield commitment
        sla = GaugeMetricFamily(
            "funnel_sla_followup_seconds", "The follow-up SLA in seconds.", labels=["team"]
        )
        for team in self._teams:
            sla.add_metric([team], self._sla_seconds)
        yield sla

    def describe(self) -> Iterator[Metric]:
        """The same families (static), so registering needs no scrape."""
        return self.collect()


def _plan_targets(settings: Settings) -> dict[str, int]:
    """Per-month entries of the reverse funnel, or none when it needs a measured rate."""
    north, stages = settings.north_star, settings.funnel.stages
    if not north.revenue_goal > 0 or any(s not in north.conversion for s in stages[:-1]):
        return {}
    plan = reverse_funnel(
        stages,
        revenue_goal=north.revenue_goal,
        average_deal_size=north.average_deal_size,
        period=north.period,
        rates=north.conversion,
        rep_capacity=north.rep_capacity_leads_per_month,
    )
    return dict(plan.per_month)


def register_targets(registry: CollectorRegistry, settings: Settings) -> None:
    """Register the targets of ``settings`` on ``registry`` (once per registry)."""
    registry.register(TargetsCollector(settings))
