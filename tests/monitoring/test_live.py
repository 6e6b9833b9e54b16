"""The live check: a real worker, real traffic and a real Prometheus with the project's rules.

One stack for the module: the session's embedded broker, a ``funnel worker`` on the wall
clock with the docker-compose configuration (docker/funnel.toml: teams, business hours,
commitments, north star), five days of generated traffic plus a few scripted leads that go
all the way to customer, and Debian's ``prometheus`` scraping the worker every second with
every rule file of prometheus/rules loaded. The copies Prometheus loads differ in two ways
only: every group is evaluated every second, and every ``for`` is 0s, so that an alert the
data warrants fires within the test instead of after minutes.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from stream.config.topics import TopicNames
from stream.generate import generate_messages
from stream.kafka.partitioner import home_partition
from tests.harness import WorkerProcess, free_port, produce, wait_caught_up
from tests.monitoring.sources import (
    DASHBOARDS,
    PROMETHEUS,
    REPO,
    RULE_FILES,
    all_panels,
    contract_metrics,
    dashboard,
    exposed_names,
    infinity_url,
    load_yaml,
    metric_names,
    rules,
    select,
    substitute,
    variable_metrics,
)
from tests.reliability.support import PARTITIONS, key_at_home

Message = tuple[str, bytes | None, bytes | None, int | None]
DAY = 86400.0
CONFIG = REPO / "docker" / "funnel.toml"
TEAMS = ("sales-emea", "sales-amer")


class PrometheusServer:
    """A real ``prometheus`` process on a free loopback port, with its own storage."""

    def __init__(self, workdir: Path, worker_port: int) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.worker_port = worker_port
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        """The project's prometheus.yml, pointed at the test worker, with fast rule copies."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = load_yaml(PROMETHEUS / "prometheus.yml")
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config.pop("alerting", None)
        jobs = [job for job in config["scrape_configs"] if job["job_name"] == "funnel"]
        for job in jobs:
            job.pop("dns_sd_configs")
            job["static_configs"] = [{"targets": [f"127.0.0.1:{self.worker_port}"]}]
        config["scrape_configs"] = jobs
        config["rule_files"] = []
        for path in RULE_FILES:
            content = load_yaml(path)
            for group in content["groups"]:
                group["interval"] = "1s"
                for rule in group["rules"]:
                    if "for" in rule:
                        rule["for"] = "0s"
            copy = self.workdir / path.name
            copy.write_text(yaml.safe_dump(content, sort_keys=False))
            config["rule_files"].append(str(copy))
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self) -> PrometheusServer:
        config = self.write_config()
        log = (self.workdir / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def tail(self, lines: int = 20) -> str:
        text = (self.workdir / "prometheus.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """One call of the HTTP API; the decoded answer, error answers included."""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as error:  # 400 and 422 carry the parse error
            answer = json.loads(error.read())
        return answer

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)

    def firing(self) -> list[dict[str, Any]]:
        """The alerts in state firing."""
        alerts: list[dict[str, Any]] = self.api("alerts")["data"]["alerts"]
        return [a for a in alerts if a["state"] == "firing"]

    def wait_for(self, what: str, test: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None and self.process.poll() is None, self.tail()
            try:
                if test():
                    return
            except (urllib.error.URLError, OSError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus: {what} not within {timeout}s\n{self.tail()}")
            time.sleep(0.25)


def _at(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def journeys(names: TopicNames, now: float, count: int) -> list[Message]:
    """Leads that go all the way from a visit to customer, the last step two hours ago (a
    step between stages is observed once its partition's clock is an hour past it).

    The generated traffic of a few days has (almost) no customer: real deals take weeks.
    Each journey's visitor comes back a minute ago and a new lead arrives on the journey's
    partition and is contacted, so that every input topic has a fresh event (the watermarks
    are minutes old, as in live traffic) and the journey's partition clock is too.
    """
    out: list[Message] = []
    for i in range(count):
        start = now - 3.5 * DAY + i * 60
        lead, visitor = f"journey-lead-{i}", f"journey-visitor-{i}"
        fresh = key_at_home(f"fresh-lead-{i}", home_partition(lead.encode(), PARTITIONS))
        team, source = TEAMS[i % 2], ("organic", "email")[i % 2]
        visit = {"type": "visit", "visitor_id": visitor, "source": source}
        created = {"type": "lead_created", "lead_id": lead, "source": source, "team": team}
        events: list[tuple[float, str, str, dict[str, Any]]] = [
            (start, names.visits, visitor, visit),
            (start + 60, names.leads, lead, created),
        ]
        for stage, at in [
            ("contacted", start + 0.1 * DAY),
            ("mql", start + 0.5 * DAY),
            ("sql", start + DAY),
            ("opportunity", start + 2 * DAY),
            ("customer", now - 7200 - i),
        ]:
            changed = {"type": "stage_changed", "lead_id": lead, "to_stage": stage}
            events.append((at, names.transitions, lead, changed))
        events.append((now - 60 - i, names.visits, visitor, dict(visit)))
        events.append((now - 90 - i, names.leads, fresh, {**created, "lead_id": fresh}))
        contacted = {"type": "stage_changed", "lead_id": fresh, "to_stage": "contacted"}
        events.append((now - 80 - i, names.transitions, fresh, contacted))
        for n, (at, topic, key, body) in enumerate(events):
            body = {**body, "event_id": f"journey-{i}-{n}", "occurred_at": _at(at)}
            out.append((topic, key.encode(), json.dumps(body).encode(), None))
    return out


@dataclass
class Stack:
    worker: WorkerProcess
    prometheus: PrometheusServer


def _firing_teams(prometheus: PrometheusServer, alertname: str) -> set[str]:
    return {
        a["labels"].get("team", "")
        for a in prometheus.firing()
        if a["labels"]["alertname"] == alertname
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(broker: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Worker and Prometheus over five days of traffic, once every series has data."""
    if shutil.which("prometheus") is None:
        pytest.fail("the prometheus server is missing: apt-get install prometheus (make test)")
    prefix = f"t{uuid.uuid4().hex[:12]}."
    names = TopicNames.from_prefix(prefix)
    workdir = tmp_path_factory.mktemp("live")
    worker = WorkerProcess(
        broker,
        prefix,
        workdir / "worker",
        clock="wall",
        store="memory",
        extra_env={"FUNNEL_CONFIG": str(CONFIG)},
    )
    prometheus = PrometheusServer(workdir / "prometheus", worker.port)
    now = time.time()
    generated = [
        (m.topic, m.key, m.value, None)
        for m in generate_messages(
            seed=7, start=now - 5 * DAY, end=now - 120, count=6000, topics=names
        )
    ]
    scripted = journeys(names, now, 4)
    # Two batches a few scrapes apart: a counter first exported with its final value shows
    # no increase, so most series must already exist when the second batch arrives. In each
    # batch the visits and leads go first: a stage change read before its lead, days after
    # it happened, is counted at once on its own (source unknown, orphan_hold long past).
    half, journeys_half = len(generated) // 2, len(scripted) // 2
    batches = []
    for part in (
        generated[:half] + scripted[:journeys_half],
        generated[half:] + scripted[journeys_half:],
    ):
        batches.append([m for m in part if m[0] != names.transitions])
        batches.append([m for m in part if m[0] == names.transitions])
    try:
        worker.start()
        prometheus.start()
        worker.wait_ready(timeout=60)
        up = 'up{job="funnel"} == 1'
        prometheus.wait_for("the worker up", lambda: bool(prometheus.query(up)["data"]["result"]))
        for n, batch in enumerate(batches):
            await produce(broker, batch)
            await wait_caught_up(broker, worker.app_id, names.inputs)
            if n % 2:
                await asyncio.to_thread(_scraped_and_evaluated, prometheus, 3)
        prometheus.wait_for(
            "FunnelLeadsOverdue firing for both teams",
            lambda: _firing_teams(prometheus, "FunnelLeadsOverdue") >= set(TEAMS),
        )
        yield Stack(worker, prometheus)
    finally:
        prometheus.stop()
        worker.stop()


def _scrapes(prometheus: PrometheusServer) -> tuple[float, float]:
    """How many times Prometheus has scraped the worker, and when it last did."""
    count = prometheus.query('count_over_time(up{job="funnel"}[1d])')["data"]["result"]
    last = prometheus.query('timestamp(up{job="funnel"})')["data"]["result"]
    if not count or not last:
        return 0.0, 0.0
    return float(count[0]["value"][1]), float(last[0]["value"][1])


def _scraped_and_evaluated(prometheus: PrometheusServer, scrapes: int) -> None:
    """Wait until Prometheus has scraped the worker ``scrapes`` more times, then until every
    rule group has been evaluated after the last of those scrapes (on its own state, not the
    clock: a loaded machine delays both)."""
    wanted = _scrapes(prometheus)[0] + scrapes
    prometheus.wait_for(f"{scrapes} scrapes", lambda: _scrapes(prometheus)[0] >= wanted)
    last = _scrapes(prometheus)[1]

    def evaluated() -> bool:
        groups = prometheus.api("rules")["data"]["groups"]
        return bool(groups) and all(
            datetime.fromisoformat(g["lastEvaluation"]).timestamp() > last for g in groups
        )

    prometheus.wait_for("every rule group evaluated after those scrapes", evaluated)


def _has_data(answer: dict[str, Any]) -> bool:
    """A successful answer with at least one finite value."""
    if answer.get("status") != "success":
        return False
    result = answer["data"]["result"]
    values = (
        [result[1]] if answer["data"]["resultType"] == "scalar" else [s["value"][1] for s in result]
    )
    return any(math.isfinite(float(v)) for v in values)


def _problem(answer: dict[str, Any]) -> str:
    if answer.get("status") != "success":
        return f"error: {answer.get('error')}"
    return f"no finite value: {answer['data']['result']}"


def test_every_dashboard_panel_shows_data(stack: Stack) -> None:
    empty = []
    for panel in all_panels():
        for expr in panel.exprs:
            answer = stack.prometheus.query(substitute(expr))
            if not _has_data(answer):
                empty.append(f"{panel.file.name} / {panel.title}: {expr}\n    {_problem(answer)}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_every_recording_rule_returns_data(stack: Stack) -> None:
    empty = []
    for rule in rules():
        if not rule.is_alert:
            answer = stack.prometheus.query(rule.expr)
            if not _has_data(answer):
                empty.append(f"{rule.file.name} / {rule.name}\n    {_problem(answer)}")
    assert not empty, "recording rules without data:\n" + "\n".join(empty)


def test_every_alert_expression_parses(stack: Stack) -> None:
    errors = []
    for rule in rules():
        if rule.is_alert:
            answer = stack.prometheus.query(rule.expr)
            if answer.get("status") != "success":
                errors.append(f"{rule.name}: {answer.get('error')}")
    assert not errors, "\n".join(errors)
    # Prometheus loaded every rule file: every group is there, and every rule, evaluated
    # every second on the live data, last ran without an error (a many-to-many match, say).
    groups = stack.prometheus.api("rules")["data"]["groups"]
    assert {g["name"] for g in groups} == {r.group for r in rules()}
    failing = [
        f"{rule['name']}: {rule.get('lastError')}"
        for group in groups
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert not failing, failing


def month_elapsed(now: float) -> float:
    """The share of the current month (UTC) gone at ``now``, as ``:funnel_month_elapsed:ratio``."""
    day = datetime.fromtimestamp(now, UTC)
    first = day.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return (day - first).total_seconds() / (following - first).total_seconds()


# FunnelMarketingBehindCommitment judges the month once this share of it has passed
# (:funnel_month_elapsed:threshold_ratio in prometheus/rules/recording.yml).
MONTH_ELAPSED_THRESHOLD = 0.1


def test_the_alerts_the_traffic_warrants_fire_and_no_other(stack: Stack) -> None:
    # The generator leaves about a quarter of the leads without follow-up, so both teams
    # have overdue leads, and far more than 5 % of the leads breach: the burn rate of the
    # follow-up SLO is past at least its ticket tier. Marketing is far behind its monthly
    # commitments (30,000 MQLs and 10,000 SQLs; five days of this traffic hold a few
    # hundred), which the alert judges once a tenth of the month has passed (from about
    # the 4th). Open leads at risk (threshold 0) depend on the hour and weekday of the run
    # (the SLA runs on business hours): the alert fires for the teams the worker reports
    # at risk, the rule's input. Nothing else: the pipeline is healthy.
    prometheus = stack.prometheus
    assert _firing_teams(prometheus, "FunnelLeadsOverdue") >= set(TEAMS)

    def expected() -> dict[str, set[str]]:
        samples = stack.worker.metrics()
        at_risk = {labels["team"] for labels, v in samples.series("funnel_leads_at_risk") if v}
        out = {
            "FunnelLeadsOverdue": set(TEAMS),
            "FunnelFollowupSLOBurnRate": {"*"},
        }
        if at_risk:
            out["FunnelLeadsAtRisk"] = at_risk
        if month_elapsed(time.time()) >= MONTH_ELAPSED_THRESHOLD:
            out["FunnelMarketingBehindCommitment"] = {"mql", "sql"}
        return out

    def firing() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for alert in prometheus.firing():
            labels = alert["labels"]
            name = labels["alertname"]
            which = labels.get("team") or labels.get("stage") or ""
            if name == "FunnelFollowupSLOBurnRate":
                which = "*"  # its tiers and teams depend on the generated breaches
            out.setdefault(name, set()).add(which)
        return out

    try:
        prometheus.wait_for("the alerts the traffic warrants", lambda: firing() == expected())
    except AssertionError:
        assert firing() == expected()  # shows the difference
        raise
    for alert in prometheus.firing():
        annotations = alert["annotations"]
        assert "<no value>" not in annotations["description"], annotations
        assert annotations["runbook_url"].endswith("#" + alert["labels"]["alertname"].lower())


def test_every_metric_named_is_exported_by_the_worker(stack: Stack) -> None:
    exposed = exposed_names(contract_metrics())
    named = set()
    for rule in rules():
        named |= metric_names(rule.expr)
    for panel in all_panels():
        for expr in panel.exprs:
            named |= metric_names(expr)
    for path in DASHBOARDS:
        named.update(variable_metrics(dashboard(path)))
    wanted = sorted(name for name in named if name in exposed)
    present = set(stack.worker.metrics().names())
    missing = [name for name in wanted if name not in present]
    assert not missing, f"named by a dashboard or rule, absent from /metrics: {missing}"


def _get_json(url: str, retry_for: float = 15.0) -> Any:
    """The JSON ``url`` answers, asked again while it answers 503 (a group rebalancing)."""
    give_up = time.monotonic() + retry_for
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.monotonic() > give_up:
                raise AssertionError(f"{url}: HTTP {error.code} {error.read()!r}") from None
            time.sleep(0.5)


def test_every_lead_table_reads_its_columns_from_the_worker(stack: Stack) -> None:
    # What Grafana's Infinity data source asks, with the dashboard's worker variable set to
    # the test worker, and what it reads from the answer: the root selector's rows and, in
    # each row, every column's selector.
    tables = [(panel, t) for panel in all_panels() for t in panel.infinity_targets]
    assert tables
    for panel, target in tables:
        url = infinity_url(target, {"${worker}": stack.worker.url("")})
        rows = select(_get_json(url), target["root_selector"])
        where = f"{panel.file.name} / {panel.title}: {url}"
        assert isinstance(rows, list) and rows, f"{where}: no rows"
        limit = int(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["limit"][0])
        assert len(rows) == limit, f"{where}: {len(rows)} rows"  # far more leads are open
        for column in target["columns"]:
            missing = [row for row in rows if column["selector"] not in row]
            assert not missing, f"{where}: no {column['selector']!r} in {missing[0]}"
        deadlines = [row["deadline"] for row in rows]
        assert deadlines == sorted(deadlines), f"{where}: not soonest deadline first"
        assert rows[0]["seconds_left"] < 0, f"{where}: overdue leads come first"
