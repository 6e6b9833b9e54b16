"""The soak's figures: per block of steady traffic, the verdict per criterion, table and JSON.

A block is ``block_s`` seconds of steady traffic (5 minutes in the full soak). Its delays are
the exact ones the worker (bench/delayworker.py) and the raw client (bench/rawdelay.py)
appended to their files while the block ran, split where the files stood at the block's end;
its RSS is the worker's last ``VmRSS`` sample in it; its CPU the worker's CPU seconds per
second over it (from ``/proc/<pid>/stat``), beside the machine's load average at its end.

The criteria (issue 17): RSS growth after the first block at most 5 % (the highest sample
after the first block against the last sample of the first); every block's worker p99 within
10 ms of the first block's; no ERROR, CRITICAL or traceback line in the worker's log; every
state gauge on ``/metrics`` and in Prometheus equal to the offline recount.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.latency import exact_quantile

RSS_GROWTH_MAX = 0.05
P99_SPREAD_MAX_S = 0.010


@dataclass
class Mark:
    """Where the run stood at the end of a block (or at the start of the steady traffic)."""

    at_s: float  # seconds since the steady traffic began
    wall: float  # epoch seconds
    produced: int
    worker_delays: int
    raw_delays: int
    worker_cpu_s: float | None = None  # the worker's user + system CPU seconds so far
    load_1m: float | None = None  # the machine's 1-minute load average


@dataclass
class Block:
    """One block's figures (delays in seconds, RSS in MiB)."""

    index: int
    seconds: float
    events: int
    worker_n: int
    worker_p50: float | None
    worker_p99: float | None
    worker_max: float | None
    raw_n: int
    raw_p99: float | None
    prom_p99: float | None
    rss_mb: float | None
    worker_cpu: float | None  # cores the worker used on average (CPU seconds per second)
    load_1m: float | None  # the machine's 1-minute load average at the block's end


@dataclass
class Outcome:
    """Everything the soak measured; :meth:`criteria` judges it."""

    minutes: float
    rate: float
    open_leads: int
    fill_events_per_s: float | None
    steady_events: int
    steady_events_per_s: float
    blocks: list[Block] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (s since steady start, MiB)
    log_problems: int = 0
    log_first: list[str] = field(default_factory=list)
    gauges_compared: int = 0
    gauge_mismatches: list[str] = field(default_factory=list)
    prometheus_mismatches: list[str] = field(default_factory=list)
    recounted_events: int = 0
    catch_up_s: float | None = None
    load_avg: list[float] = field(default_factory=list)

    def rss_growth(self, block_s: float) -> float | None:
        """The highest RSS after the first block over the first block's last sample, minus 1."""
        first = [mb for at, mb in self.rss if at <= block_s]
        later = [mb for at, mb in self.rss if at > block_s]
        if not first or not later:
            return None
        return max(later) / first[-1] - 1.0

    def p99_spread(self) -> float | None:
        """The largest worker p99 of a later block minus the first block's."""
        p99s = [b.worker_p99 for b in self.blocks]
        if len(p99s) < 2 or any(p is None for p in p99s):
            return None
        first = p99s[0]
        assert first is not None
        return max(p - first for p in p99s[1:] if p is not None)

    def criteria(self, block_s: float) -> dict[str, dict[str, Any]]:
        """Each criterion: its figure, its limit and whether it passed (None: not judged)."""
        growth = self.rss_growth(block_s)
        spread = self.p99_spread()
        gauges_ok = not self.gauge_mismatches and not self.prometheus_mismatches
        return {
            "rss_growth": {
                "value": growth,
                "limit": RSS_GROWTH_MAX,
                "pass": None if growth is None else growth <= RSS_GROWTH_MAX,
            },
            "p99_spread_s": {
                "value": spread,
                "limit": P99_SPREAD_MAX_S,
                "pass": None if spread is None else spread <= P99_SPREAD_MAX_S,
            },
            "log_errors": {"value": self.log_problems, "limit": 0, "pass": not self.log_problems},
            "gauges_equal_recount": {
                "value": self.gauges_compared,
                "mismatches": self.gauge_mismatches + self.prometheus_mismatches,
                "pass": gauges_ok and self.gauges_compared > 0,
            },
        }


def make_blocks(
    marks: Sequence[Mark],
    worker: Sequence[float],
    raw: Sequence[float],
    rss: Sequence[tuple[float, float]],
    prom_p99: Sequence[float | None],
) -> list[Block]:
    """The blocks between consecutive ``marks``; ``worker``/``raw``: every delay, in order."""
    blocks = []
    for i, (start, end) in enumerate(itertools.pairwise(marks)):
        mine = sorted(worker[start.worker_delays : end.worker_delays])
        theirs = sorted(raw[start.raw_delays : end.raw_delays])
        inside = [mb for at, mb in rss if start.at_s < at <= end.at_s]
        blocks.append(
            Block(
                index=i + 1,
                seconds=end.at_s - start.at_s,
                events=end.produced - start.produced,
                worker_n=len(mine),
                worker_p50=exact_quantile(mine, 0.5),
                worker_p99=exact_quantile(mine, 0.99),
                worker_max=mine[-1] if mine else None,
                raw_n=len(theirs),
                raw_p99=exact_quantile(theirs, 0.99),
                prom_p99=prom_p99[i] if i < len(prom_p99) else None,
                rss_mb=inside[-1] if inside else None,
                worker_cpu=_cores(start, end),
                load_1m=end.load_1m,
            )
        )
    return blocks


def _cores(start: Mark, end: Mark) -> float | None:
    if start.worker_cpu_s is None or end.worker_cpu_s is None or end.at_s <= start.at_s:
        return None
    return (end.worker_cpu_s - start.worker_cpu_s) / (end.at_s - start.at_s)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(outcome: Outcome, block_s: float) -> str:
    """The per-block table and one line per criterion, as plain text (Markdown-friendly)."""
    lines = [
        "| block | events | worker p50 ms | worker p99 ms | worker max ms | raw p99 ms "
        "| Prometheus p99 ms | RSS MiB | worker CPU | load |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for b in outcome.blocks:
        rss = "-" if b.rss_mb is None else f"{b.rss_mb:.0f}"
        lines.append(
            f"| {b.index} | {b.events:,} | {_ms(b.worker_p50)} | {_ms(b.worker_p99)} "
            f"| {_ms(b.worker_max)} | {_ms(b.raw_p99)} | {_ms(b.prom_p99)} | {rss} "
            f"| {_num(b.worker_cpu)} | {_num(b.load_1m)} |"
        )
    lines.append("")
    for name, c in outcome.criteria(block_s).items():
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[c["pass"]]
        value = c["value"]
        if name == "rss_growth" and value is not None:
            shown = f"{value * 100:+.1f} % (limit {c['limit'] * 100:.0f} %)"
        elif name == "p99_spread_s" and value is not None:
            shown = f"{value * 1000:+.1f} ms (limit {c['limit'] * 1000:.0f} ms)"
        elif name == "gauges_equal_recount":
            shown = f"{value} series compared, {len(c['mismatches'])} differ"
        else:
            shown = str(value)
        lines.append(f"{name}: {verdict}: {shown}")
        for detail in c.get("mismatches", [])[:5]:
            lines.append(f"  {detail}")
    return "\n".join(lines)


def json_line(outcome: Outcome, block_s: float, source: str | None) -> str:
    """One JSON object: the run's figures, its blocks, each criterion and the code measured."""
    data = asdict(outcome)
    data.pop("rss")
    data["rss_samples"] = len(outcome.rss)
    data["block_s"] = block_s
    data["criteria"] = outcome.criteria(block_s)
    data["passed"] = all(c["pass"] is not False for c in data["criteria"].values())
    data["source"] = source
    return json.dumps(data, separators=(", ", ": "))
