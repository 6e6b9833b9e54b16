"""``/leads`` through real workers: one worker's list, and the group's from two workers.

300 open leads over 8 partitions, some followed up, some overdue, some at risk, with owners.
One worker alone answers for every partition; then a second joins, and once the partitions
are split, each worker's own list holds only its partitions' leads, the two are disjoint, and
``scope=group`` asked of either worker equals the single worker's list: each lead once.
"""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from stream.config.topics import TopicNames
from tests.harness import WorkerProcess, produce, wait_caught_up
from tests.reliability.support import change, lead

HOUR = 3600.0


def get(worker: WorkerProcess, query: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(worker.url(f"/leads?{query}"), timeout=10) as got:
            return got.status, json.loads(got.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def wait_answer(worker: WorkerProcess, query: str, partitions: int) -> dict[str, Any]:
    """The first 200 answer covering ``partitions`` partitions (503 while rebalancing)."""
    deadline = time.monotonic() + 90
    while True:
        status, body = get(worker, query)
        if status == 200 and len(body["partitions"]) == partitions:
            return body
        assert status in (200, 503), (status, body)
        assert time.monotonic() < deadline, worker.tail()
        await asyncio.sleep(0.3)


def funnel_leads(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "leads", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def ids(body: dict[str, Any]) -> list[str]:
    return [row["lead_id"] for row in body["leads"]]


async def test_two_workers_list_each_lead_once(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    now = time.time()
    messages = []
    for i in range(300):
        start = now - (i % 30) * HOUR  # 24 h SLA: a fifth are overdue, some at risk
        lid = f"lead-{i:03d}"
        owner = f"rep-{i % 7}"
        messages.append(lead(names, f"l{i}", lid, start, team=f"team-{i % 3}", owner=owner))
        if i % 5 == 0:
            messages.append(change(names, f"c{i}", lid, "contacted", start + 60))
    await produce(broker, messages)
    one = WorkerProcess(broker, topic_prefix, tmp_path / "one", clock="wall").start()
    two = None
    try:
        one.wait_ready(timeout=60)
        await wait_caught_up(broker, one.app_id, names.inputs)
        alone = {}
        for status in ("awaiting", "at_risk", "overdue"):
            alone[status] = await wait_answer(one, f"status={status}&limit=1000", 8)
        assert len(alone["awaiting"]["leads"]) == 240
        assert alone["overdue"]["leads"][0]["seconds_left"] < 0
        assert all(row["seconds_left"] >= 0 for row in alone["at_risk"]["leads"])
        assert {row["owner"] for row in alone["awaiting"]["leads"]} == {
            f"rep-{i}" for i in range(7)
        }
        s = one.metrics()
        assert len(alone["overdue"]["leads"]) == s.value("funnel_leads_overdue")
        assert len(alone["at_risk"]["leads"]) == s.value("funnel_leads_at_risk", before="4h")
        status, body = get(one, "status=nope")
        assert status == 400 and "status" in body["error"]

        two = WorkerProcess(broker, topic_prefix, tmp_path / "two", clock="wall").start()
        two.wait_ready(timeout=90)
        mine = await wait_answer(one, "limit=1000", 4)
        theirs = await wait_answer(two, "limit=1000", 4)
        assert set(mine["partitions"]).isdisjoint(theirs["partitions"])
        assert set(ids(mine)).isdisjoint(ids(theirs))
        assert sorted(ids(mine) + ids(theirs)) == sorted(ids(alone["awaiting"]))
        for status in ("awaiting", "at_risk", "overdue"):
            for worker in (one, two):
                group = await wait_answer(worker, f"status={status}&limit=1000&scope=group", 8)
                assert ids(group) == ids(alone[status]), (status, worker.port)
        group = await wait_answer(two, "limit=10&scope=group&team=team-1&owner=rep-1", 8)
        expected = [
            r["lead_id"]
            for r in alone["awaiting"]["leads"]
            if (r["team"], r["owner"]) == ("team-1", "rep-1")
        ]
        assert ids(group) == expected[:10]

        # funnel leads prints the group's list; an unreachable worker is one line.
        out = funnel_leads("--status", "overdue", "--format", "csv", "--url", two.url(""))
        rows = list(csv.DictReader(out.stdout.splitlines()))
        assert [r["lead_id"] for r in rows] == ids(alone["overdue"])[:100]
        table = funnel_leads("--team", "team-2", "--url", one.url("")).stdout.splitlines()
        assert table[0].split()[:3] == ["lead", "team", "owner"]
        assert len(table) == 1 + sum(r["team"] == "team-2" for r in alone["awaiting"]["leads"])
        down = funnel_leads("--url", "http://127.0.0.1:9", check=False)
        assert down.returncode == 2
        assert down.stderr.startswith("funnel leads: cannot reach the worker")
        assert len(down.stderr.strip().splitlines()) == 1
    finally:
        if two is not None:
            two.stop()
        one.stop()
