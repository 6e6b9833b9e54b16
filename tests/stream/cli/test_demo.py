"""``funnel demo`` end to end: the whole funnel on screen, and nothing left running afterwards."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.cli import demo as demo_module
from stream.cli.demo import WorkerFailed, run_demo

STAGES = ("visit", "lead", "mql", "sql", "opportunity", "customer")
# A row of the most urgent leads: id, team, owner, deadline (UTC), time left (-0h20m overdue).
URGENT_ROW = (
    r"^\s*(l-[0-9a-f]+)\s+(sales-\S+)\s+(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d)"
    r"\s+(-?)(\d+)h(\d\d)m\s*$"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _demo(*args: str, web_port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNEL_")}
    env["FUNNEL_WEB_PORT"] = str(web_port)  # the test's own port: no clash with a running demo
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "demo", *args],
        env=env,
        stdout=subprocess.PIPE,  # not a terminal: plain-text snapshots
        stderr=subprocess.PIPE,
        text=True,
    )


def _started_pids(output: str) -> list[int]:
    """The broker's and the worker's pids, as the demo announces them."""
    broker = re.search(r"^embedded broker: \S+.*, pid (\d+)$", output, re.M)
    worker = re.search(r"^worker: pid (\d+), log ", output, re.M)
    assert broker and worker, output
    return [int(broker[1]), int(worker[1])]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _workers_on(web_port: int) -> list[int]:
    """Pids of worker processes started with FUNNEL_WEB_PORT=web_port (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # ended while we looked, or not ours to read
            continue
        if b"stream.cli\0worker" in argv and f"FUNNEL_WEB_PORT={web_port}".encode() in environ:
            found.append(int(entry.name))
    return found


def _final_entries(output: str) -> dict[str, int]:
    """Entries per stage in the last snapshot's stage table."""
    final = output.rpartition("=== funnel demo: final snapshot")[2]
    assert final, output
    rows = re.findall(r"^\s*(\w+)\s+([\d,]+)\s+(?:-|[\d.]+ ?%)\s+[\d,]+\s*$", final, re.M)
    return {stage: int(n.replace(",", "")) for stage, n in rows}


def _final_teams(output: str) -> tuple[list[str], dict[str, tuple[int, int, int]]]:
    """The last snapshot's team table: its header cells, and per team awaiting, at risk and
    overdue (its last three columns)."""
    final = output.rpartition("=== funnel demo: final snapshot")[2]
    table = final.partition("Follow-up per team")[2].partition("events:")[0]
    header = re.search(r"^\s*(team\s.*?)\s*$", table, re.M)
    assert header, output
    rows = re.findall(r"^\s*(sales-\S+)\s.*?\s([\d,]+)\s+([\d,]+)\s+([\d,]+)\s*$", table, re.M)
    teams = {
        team: (int(a.replace(",", "")), int(r.replace(",", "")), int(o.replace(",", "")))
        for team, a, r, o in rows
    }
    return re.split(r"\s{2,}", header[1]), teams


def _final_urgent_leads(output: str) -> list[tuple[str, str, str, str, int]]:
    """The last snapshot's most urgent leads: id, team, owner, deadline, minutes left."""
    final = output.rpartition("=== funnel demo: final snapshot")[2]
    table = final.partition("Most urgent leads: soonest deadline first")[2]
    rows = re.findall(URGENT_ROW, table.partition("events:")[0], re.M)
    return [
        (lead, team, owner, deadline, (-1 if sign else 1) * (int(h) * 60 + int(m)))
        for lead, team, owner, deadline, sign, h, m in rows
    ]


@pytest.mark.timeout(240)
def test_demo_shows_every_stage_and_leaves_no_process() -> None:
    web_port = _free_port()
    started = time.monotonic()
    demo = _demo("--duration", "25", "--backfill-days", "1", "--rate", "200", web_port=web_port)
    out, err = demo.communicate(timeout=200)  # room for a loaded machine
    seconds = time.monotonic() - started

    assert demo.returncode == 0, err
    entries = _final_entries(out)
    assert {stage: entries.get(stage, 0) > 0 for stage in STAGES} == dict.fromkeys(STAGES, True), (
        out
    )
    assert entries["visit"] > entries["lead"] > entries["customer"]
    assert f"http://127.0.0.1:{web_port}/metrics" in out
    assert re.search(r"^\s*sales-\w+\s+[\d,]+\s+\S+\s+\S+\s+[\d.]+ %", out, re.M), out
    # Per team, the leads at risk of the earliest warning (sla.warn_before: 4h, 1h), which
    # are open leads not yet overdue.
    header, teams = _final_teams(out)
    assert header[-3:] == ["awaiting", "at risk ≤4h", "overdue"], out
    assert teams and all(risk + overdue <= awaiting for awaiting, risk, overdue in teams.values())
    assert sum(risk for _, risk, _ in teams.values()) > 0, out
    # The five most urgent open leads, soonest deadline first, each with its owner.
    urgent = _final_urgent_leads(out)
    assert len(urgent) == 5, out
    assert {team for _, team, _, _, _ in urgent} <= set(teams)
    assert all(re.fullmatch(r"rep-\d+", owner) for _, _, owner, _, _ in urgent), out
    assert [row[3] for row in urgent] == sorted(row[3] for row in urgent)
    assert urgent[0][4] <= urgent[-1][4]
    assert "generator sent" in out and out.rstrip().endswith("demo stopped")
    pids = _started_pids(out)
    assert not [pid for pid in pids if _alive(pid)]
    assert _workers_on(web_port) == []
    assert seconds >= 25  # it ran for its --duration


@pytest.mark.timeout(60)
def test_ctrl_c_stops_everything_it_started() -> None:
    web_port = _free_port()
    demo = _demo("--backfill-days", "0", "--rate", "20", web_port=web_port)
    assert demo.stdout is not None
    lines: list[str] = []
    for line in demo.stdout:  # up to the worker becoming healthy
        lines.append(line)
        if line.startswith("worker healthy"):
            break
    pids = _started_pids("".join(lines))
    assert all(_alive(pid) for pid in pids)

    demo.send_signal(signal.SIGINT)
    out, err = demo.communicate(timeout=30)

    assert demo.returncode == 0, err
    assert out.rstrip().endswith("demo stopped")
    assert not [pid for pid in pids if _alive(pid)]
    assert _workers_on(web_port) == []


def test_a_web_port_in_use_is_refused_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        demo = _demo("--duration", "5", web_port=port)
        out, err = demo.communicate(timeout=30)
    assert demo.returncode == 2
    assert err.strip().splitlines()[-1] == (
        f"funnel demo: web port {port} is already in use (FUNNEL_WEB_PORT)"
    )
    assert "embedded broker" not in out  # refused before anything was started


def test_a_worker_that_is_not_healthy_in_time_ends_the_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo_module, "HEALTH_TIMEOUT_S", 0.5)  # it takes longer to start
    for name in [k for k in os.environ if k.startswith("FUNNEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FUNNEL_WEB_PORT", str(_free_port()))

    with pytest.raises(WorkerFailed, match=r"^the worker was not healthy after 0.5 s \(log: "):
        run_demo(None, seed=1, rate=10, backfill_days=0)

    out, err = capsys.readouterr()
    assert "--- last lines of " in err  # the worker's log, to see why
    assert not [pid for pid in _started_pids(out) if _alive(pid)]
    log_dir = re.search(r"logs kept in (\S+)$", out, re.M)
    assert log_dir and (Path(log_dir[1]) / "worker.log").is_file()
    shutil.rmtree(log_dir[1])
