"""Reading a worker's ``/metrics``: the Prometheus text format into queryable samples.

:func:`parse_metrics` is pure; :class:`Samples` answers the few questions the demo, the tests
and the reports ask (a sum over matching series, the series of a name, a histogram quantile
computed like PromQL's ``histogram_quantile``), and :func:`summarize` condenses a scrape into
the funnel's headline numbers. :func:`fetch_metrics` gets and parses one scrape over HTTP;
:func:`fetch_json` gets one of the worker's JSON views (``/leads``).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from stream.core.durations import parse_duration
from stream.errors import FunnelError
from stream.formats import count, percent, seconds

__all__ = [
    "FunnelSummary",
    "Samples",
    "ScrapeError",
    "StageRow",
    "TeamRow",
    "fetch_json",
    "fetch_metrics",
    "fetch_status",
    "parse_metrics",
    "summarize",
]

Series = tuple[dict[str, str], float]


class ScrapeError(FunnelError):
    """A metrics endpoint cannot be reached, answers with an error, or returns bad text."""


class Samples:
    """The samples of one scrape, by sample name (``funnel_stage_entries_total``, a
    histogram's ``..._bucket``, ``..._count`` and ``..._sum``), each with its labels."""

    def __init__(self, series: Mapping[str, list[Series]]) -> None:
        self._series = {name: list(rows) for name, rows in series.items()}

    def names(self) -> list[str]:
        """Every sample name present, sorted."""
        return sorted(self._series)

    def series(self, name: str, /) -> list[Series]:
        """Every ``(labels, value)`` of the sample ``name`` (copies; empty when absent)."""
        return [(dict(labels), value) for labels, value in self._series.get(name, ())]

    def value(self, name: str, /, **labels: str) -> float:
        """The sum over the series of ``name`` whose labels include ``labels``; 0.0 if none."""
        return sum(value for _, value in self._matching(name, labels))

    def histogram_quantile(self, q: float, name: str, /, **labels: str) -> float | None:
        """The ``q``-quantile (0 ≤ q ≤ 1) of histogram ``name`` over the matching series.

        Like PromQL's ``histogram_quantile(q, sum by (le) (name_bucket{labels}))``: the bucket
        holding the rank is found and the value interpolated linearly within it (from 0 for
        the first bucket); a rank in the ``+Inf`` bucket gives the highest finite bound.
        None when there are no observations or no ``+Inf`` bucket.
        """
        if math.isnan(q):
            return None
        cumulative: defaultdict[float, float] = defaultdict(float)
        for found, value in self._matching(f"{name}_bucket", labels):
            if "le" in found:
                cumulative[float(found["le"])] += value
        bounds = sorted(cumulative)
        if len(bounds) < 2 or bounds[-1] != math.inf:
            return None
        counts = [cumulative[bound] for bound in bounds]
        for i in range(1, len(counts)):  # scrapes are not atomic; keep the counts monotonic
            counts[i] = max(counts[i], counts[i - 1])
        total = counts[-1]
        if total <= 0:
            return None
        if q < 0:
            return -math.inf
        if q > 1:
            return math.inf
        rank = q * total
        b = next(i for i, count in enumerate(counts) if count >= rank)
        if b == len(bounds) - 1:
            return bounds[-2]
        if b == 0 and bounds[0] <= 0:
            return bounds[0]
        start = bounds[b - 1] if b > 0 else 0.0
        below = counts[b - 1] if b > 0 else 0.0
        in_bucket = counts[b] - below
        if in_bucket <= 0:
            return start
        return start + (bounds[b] - start) * (rank - below) / in_bucket

    def _matching(self, name: str, labels: Mapping[str, str]) -> list[Series]:
        return [
            (found, value)
            for found, value in self._series.get(name, ())
            if all(found.get(key) == wanted for key, wanted in labels.items())
        ]

    def __repr__(self) -> str:
        return f"Samples({sum(map(len, self._series.values()))} series)"


def parse_metrics(text: str) -> Samples:
    """Parse Prometheus text exposition into :class:`Samples`; bad text raises ScrapeError."""
    by_name: defaultdict[str, list[Series]] = defaultdict(list)
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                by_name[sample.name].append((dict(sample.labels), float(sample.value)))
    except ValueError as exc:
        raise ScrapeError(f"not Prometheus text format: {exc}") from None
    return Samples(by_name)


@dataclass(frozen=True, slots=True)
class StageRow:
    """One funnel stage: entries (all sources), conversion from the previous stage (None for
    the first stage or when the previous one has none) and entries in the current window."""

    stage: str
    entries: float
    conversion: float | None
    in_window: float


@dataclass(frozen=True, slots=True)
class TeamRow:
    """One sales team: first follow-ups, their latency p50/p95 (seconds, None without any),
    the share within the SLA (None without follow-ups), and open leads awaiting, at risk (for
    the summary's ``at_risk_before``; 0 without a warning) and overdue."""

    team: str
    followups: float
    p50_seconds: float | None
    p95_seconds: float | None
    within_sla: float | None
    awaiting: float
    at_risk: float
    overdue: float


@dataclass(frozen=True, slots=True)
class FunnelSummary:
    """What one scrape says about the funnel, the follow-up SLA and the pipeline."""

    window: str
    stages: tuple[StageRow, ...]
    teams: tuple[TeamRow, ...]
    events: dict[str, float]  # consumed, applied, duplicate, rejected, lag (all topics)
    # The earliest warning (the largest ``before`` of funnel_leads_at_risk); None without any.
    at_risk_before: str | None = None

    def stage_cells(self) -> list[list[str]]:
        """The stage rows as text, headers first: stage, entries, conversion, window entries
        (the current ``1d`` window is headed "today")."""
        in_window = "today" if self.window == "1d" else f"current {self.window}"
        return [["stage", "entries", "conversion", in_window]] + [
            [row.stage, count(row.entries), percent(row.conversion), count(row.in_window)]
            for row in self.stages
        ]

    def team_cells(self) -> list[list[str]]:
        """The team rows as text, headers first; the at-risk column (headed ``at risk ≤4h``
        for the warning ``4h``) only when a warning is configured."""
        warned = self.at_risk_before is not None
        at_risk = [f"at risk ≤{self.at_risk_before}"] if warned else []
        headers = ["team", "follow-ups", "p50", "p95", "within SLA", "awaiting", *at_risk]
        return [[*headers, "overdue"]] + [
            [
                row.team,
                count(row.followups),
                seconds(row.p50_seconds),
                seconds(row.p95_seconds),
                percent(row.within_sla),
                count(row.awaiting),
                *([count(row.at_risk)] if warned else []),
                count(row.overdue),
            ]
            for row in self.teams
        ]

    def events_line(self) -> str:
        """``consumed 1,234 · applied ...`` for the pipeline counts."""
        return " · ".join(f"{kind} {count(n)}" for kind, n in self.events.items())


def summarize(samples: Samples, stages: tuple[str, ...], window: str = "1d") -> FunnelSummary:
    """The funnel in one scrape: per stage (in ``stages`` order) the entries since the worker
    started and in the current event-time ``window``; per team with any follow-up or open lead
    (sorted) the follow-up latency, SLA and the leads at risk for the earliest warning (the
    largest ``before``); and the pipeline's message counts and lag."""
    rows: list[StageRow] = []
    for stage in stages:
        entries = samples.value("funnel_stage_entries_total", stage=stage)
        previous = rows[-1].entries if rows else 0.0
        rows.append(
            StageRow(
                stage,
                entries,
                entries / previous if previous > 0 else None,
                samples.value(
                    "funnel_window_stage_entries", stage=stage, window=window, period="current"
                ),
            )
        )
    latency = "funnel_followup_latency_seconds"
    names = {labels.get("team", "") for labels, _ in samples.series(f"{latency}_count")}
    names |= {
        labels.get("team", "") for labels, _ in samples.series("funnel_leads_awaiting_followup")
    }
    warnings = {labels["before"] for labels, _ in samples.series("funnel_leads_at_risk")}
    before = max(warnings, key=parse_duration, default=None)
    teams: list[TeamRow] = []
    for team in sorted(names - {""}):
        done = samples.value("funnel_followups_total", team=team)
        awaiting = samples.value("funnel_leads_awaiting_followup", team=team)
        overdue = samples.value("funnel_leads_overdue", team=team)
        at_risk = 0.0
        if before is not None:
            at_risk = samples.value("funnel_leads_at_risk", team=team, before=before)
        if done or awaiting or overdue:
            within = samples.value("funnel_followups_total", team=team, within_sla="true")
            teams.append(
                TeamRow(
                    team,
                    done,
                    samples.histogram_quantile(0.5, latency, team=team),
                    samples.histogram_quantile(0.95, latency, team=team),
                    within / done if done > 0 else None,
                    awaiting,
                    at_risk,
                    overdue,
                )
            )
    events = {
        kind: samples.value(f"funnel_events_{kind}_total")
        for kind in ("consumed", "applied", "duplicate", "rejected")
    }
    events["lag"] = samples.value("funnel_consumer_lag_messages")
    return FunnelSummary(window, tuple(rows), tuple(teams), events, before)


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ScrapeError(f"cannot reach {url}: {reason}") from None


async def fetch_status(url: str, timeout: float) -> int:
    """The HTTP status ``url`` answers with (a thread does the blocking request)."""
    status, _ = await asyncio.to_thread(_get, url, timeout)
    return status


async def fetch_json(url: str, timeout: float) -> Any:
    """The JSON ``url`` answers with (a worker's ``/leads``); failures raise ScrapeError."""
    status, body = await asyncio.to_thread(_get, url, timeout)
    if status != 200:
        raise ScrapeError(f"{url} answered HTTP {status}")
    try:
        return json.loads(body)
    except ValueError:
        raise ScrapeError(f"{url} answered with something else than JSON") from None


async def fetch_metrics(url: str, timeout: float) -> Samples:
    """Scrape ``url`` (a ``/metrics`` endpoint) and parse it; failures raise ScrapeError."""
    status, body = await asyncio.to_thread(_get, url, timeout)
    if status != 200:
        raise ScrapeError(f"{url} answered HTTP {status}")
    return parse_metrics(body.decode("utf-8", errors="replace"))
