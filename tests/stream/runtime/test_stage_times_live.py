"""Time between stages and leads in (and stuck in) a stage, through a real worker, by hand.

Event clock, ``[funnel.stuck_after] sql = "1d"``. Lead X goes lead → mql (2 h) → sql (3 h) →
customer (25 h); lead Y skips from lead to sql in 4 h and stays there. Closing events at
T0 + 40 h on every partition move every partition's clock past every entry by more than the
orphan hold (1 h), so every step is final.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from stream.config.topics import TopicNames
from tests.harness import WorkerProcess, produce, wait_caught_up
from tests.reliability.support import START, change, closing_events, lead

HOUR = 3600.0
T0 = START


async def test_stage_times_and_positions_as_written_down(
    broker: str, topic_prefix: str, tmp_path: Path
) -> None:
    names = TopicNames.from_prefix(topic_prefix)
    config = tmp_path / "funnel.toml"
    config.write_text('[funnel.stuck_after]\nsql = "1d"\n')
    messages = [
        lead(names, "x0", "lead-x", T0),
        change(names, "x1", "lead-x", "mql", T0 + 2 * HOUR),
        change(names, "x2", "lead-x", "sql", T0 + 5 * HOUR),
        change(names, "x3", "lead-x", "customer", T0 + 30 * HOUR),
        lead(names, "y0", "lead-y", T0),
        change(names, "y1", "lead-y", "sql", T0 + 4 * HOUR),
        *closing_events(names, T0 + 40 * HOUR),  # 8 leads, each contacted: stage "lead"
    ]
    await produce(broker, messages)
    worker = WorkerProcess(
        broker, topic_prefix, tmp_path / "state", extra_env={"FUNNEL_CONFIG": str(config)}
    ).start()
    try:
        worker.wait_ready()
        await wait_caught_up(broker, worker.app_id, names.inputs)
        s = worker.metrics()
        with urllib.request.urlopen(worker.url("/leads?status=stuck&stage=sql")) as got:
            stuck_list = json.loads(got.read())["leads"]
        command = ["leads", "--status", "stuck", "--stage", "sql", "--format", "csv"]
        cli = subprocess.run(
            [sys.executable, "-m", "stream.cli", *command, "--url", worker.url("")],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")},
        )
    finally:
        worker.stop()

    def step(name: str, a: str, b: str, **labels: str) -> float:
        return s.value(f"funnel_stage_time_seconds_{name}", from_stage=a, to_stage=b, **labels)

    observed = {
        (lb["from_stage"], lb["to_stage"]): (v, step("sum", lb["from_stage"], lb["to_stage"]))
        for lb, v in s.series("funnel_stage_time_seconds_count")
        if v
    }
    assert observed == {
        ("lead", "mql"): (1, 2 * HOUR),  # X
        ("mql", "sql"): (1, 3 * HOUR),  # X
        ("sql", "customer"): (1, 25 * HOUR),  # X
        ("lead", "customer"): (1, 30 * HOUR),  # X, the whole way
        ("lead", "sql"): (1, 4 * HOUR),  # Y, mql skipped
    }
    assert step("bucket", "lead", "mql", le="3600.0") == 0
    assert step("bucket", "lead", "mql", le="21600.0") == 1
    assert step("bucket", "sql", "customer", le="86400.0") == 0
    assert step("bucket", "sql", "customer", le="259200.0") == 1
    in_stage = {lb["stage"]: v for lb, v in s.series("funnel_leads_in_stage") if v}
    assert in_stage == {"lead": 8, "sql": 1, "customer": 1}  # the closing leads, Y, X
    stuck = {lb["stage"]: v for lb, v in s.series("funnel_leads_stuck") if v}
    assert stuck == {"sql": 1}  # Y, in sql since T0 + 4 h: more than a day at T0 + 40 h
    # The lead behind it: Y entered sql at T0 + 4 h, stuck since T0 + 28 h, 12 h ago.
    assert [
        (r["lead_id"], r["stage"], r["clock_start"], r["deadline"], r["seconds_left"])
        for r in stuck_list
    ] == [("lead-y", "sql", T0 + 4 * HOUR, T0 + 28 * HOUR, -12 * HOUR)]
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.splitlines()[1].startswith("lead-y,")
