"""Warnings before the deadline on the wall clock, through a real worker: at the instant.

A 2 h SLA warning 1 h before the deadline. Lead A's deadline is 1 h 12 s away, so it is at
risk 12 s from now; lead B's deadline is 24 s away, so it is at risk on arrival and overdue
24 s from now. The worker's timer moves the wall clock once a second.
"""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from stream.config.topics import TopicNames
from tests.harness import WorkerProcess, produce
from tests.reliability.support import lead

LATE_BY_AT_MOST_S = 3.0
COMMAND = ("--status", "at_risk", "--format", "csv")


async def wait_until(worker: WorkerProcess, name: str, value: float, **labels: str) -> float:
    """Poll ``/metrics`` until ``name{labels}`` equals ``value``; the wall time it did."""
    deadline = time.time() + 90
    while worker.metrics().value(name, **labels) != value:
        assert time.time() < deadline, worker.tail()
        await asyncio.sleep(0.1)
    return time.time()


def at_risk_leads(worker: WorkerProcess) -> list[tuple[str, str]]:
    """``funnel leads --status at_risk --format csv`` against the worker: (lead, team) rows."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "leads",
            "--status",
            "at_risk",
            "--format",
            "csv",
            "--url",
            worker.url(""),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")},
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(done.stdout.splitlines()))
    return [(row["lead_id"], row["team"]) for row in rows]


async def test_at_risk_and_overdue_within_seconds_of_the_instant(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    config = tmp_path / "funnel.toml"
    config.write_text('[sla]\nfollowup_within = "2h"\nwarn_before = ["1h"]\n')
    names = TopicNames.from_prefix(topic_prefix)
    worker = WorkerProcess(
        broker,
        topic_prefix,
        tmp_path / "state",
        clock="wall",
        extra_env={"FUNNEL_CONFIG": str(config)},
    ).start()
    try:
        worker.wait_ready()
        now = time.time()
        a_at_risk, b_overdue = now + 12, now + 24
        await produce(
            broker,
            [
                lead(names, "a", "lead-a", a_at_risk + 3600 - 7200, team="sales"),
                lead(names, "b", "lead-b", b_overdue - 7200, team="sales"),
            ],
        )
        risk = {"team": "sales", "before": "1h"}
        await wait_until(worker, "funnel_leads_at_risk", 1, **risk)  # B, on arrival
        assert time.time() < a_at_risk - 2  # A is not at risk yet
        assert worker.metrics().value("funnel_leads_at_risk", **risk) == 1
        seen = await wait_until(worker, "funnel_leads_at_risk", 2, **risk)
        assert a_at_risk <= seen <= a_at_risk + LATE_BY_AT_MOST_S
        # The lead list says which: B (the sooner deadline) first, then A, as a user asks.
        listed = await asyncio.to_thread(at_risk_leads, worker)
        assert [lead for lead, _ in listed] == ["lead-b", "lead-a"]
        assert time.time() <= a_at_risk + LATE_BY_AT_MOST_S
        s = worker.metrics()
        assert s.value("funnel_followup_sla_warnings_total", **risk) == 2
        assert s.value("funnel_leads_overdue", team="sales") == 0
        seen = await wait_until(worker, "funnel_leads_overdue", 1, team="sales")
        assert b_overdue <= seen <= b_overdue + LATE_BY_AT_MOST_S
        s = worker.metrics()
        assert s.value("funnel_leads_at_risk", **risk) == 1  # A; B is overdue now
        assert s.value("funnel_followup_sla_breaches_total", team="sales") == 1
        assert s.value("funnel_followup_sla_warnings_total", **risk) == 2  # once per lead
    finally:
        worker.stop()
