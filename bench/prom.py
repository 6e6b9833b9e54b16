"""A real Prometheus (Debian's ``prometheus`` binary) scraping one funnel worker.

It runs in its own directory (configuration, TSDB, log) on a free loopback port, with the
project's prometheus/prometheus.yml reduced to the ``funnel`` job, pointed at the worker and
scraping it every ``scrape_s`` seconds, and every rule file of prometheus/rules loaded as
they are. Queries go through the HTTP API (``/api/v1/query``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.procs import Child, ChildFailed, free_port

REPO = Path(__file__).resolve().parent.parent
_HTTP_TIMEOUT_S = 30.0

# One series of an instant vector: its labels and its value.
Sample = tuple[dict[str, str], float]


class Prometheus:
    """``prometheus`` on ``127.0.0.1:<free port>`` scraping ``target`` (``host:port``)."""

    def __init__(self, workdir: Path, target: str, scrape_s: float) -> None:
        if shutil.which("prometheus") is None:
            raise ChildFailed("the prometheus binary is missing: apt-get install prometheus")
        self.workdir = workdir
        self.target = target
        self.scrape_s = scrape_s
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self.child = Child(
            name="prometheus",
            command=[
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            log_path=workdir / "prometheus.log",
            port=self.port,
        )

    def _write_config(self) -> Path:
        config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
        interval = f"{max(1, round(self.scrape_s))}s"
        config["global"].update(scrape_interval=interval, evaluation_interval=interval)
        config.pop("alerting", None)
        jobs = [job for job in config["scrape_configs"] if job["job_name"] == "funnel"]
        for job in jobs:
            job.pop("dns_sd_configs", None)
            job["static_configs"] = [{"targets": [self.target]}]
        config["scrape_configs"] = jobs
        config["rule_files"] = [str(REPO / "prometheus" / "rules" / "*.yml")]
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    async def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant query (at ``at``, epoch seconds, else now): each series' labels and value."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"http://127.0.0.1:{self.port}/api/v1/query?{urllib.parse.urlencode(params)}"
        answer = await asyncio.to_thread(_get_json, url)
        if answer.get("status") != "success":
            raise ChildFailed(f"prometheus: {expr!r}: {answer.get('error', answer)}")
        data = answer["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(row["metric"], float(row["value"][1])) for row in data["result"]]

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the HTTP API answers."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self.child.check_alive()
            try:
                await self.query("1")
                return
            except (ChildFailed, OSError, ValueError):
                if loop.time() > deadline:
                    raise ChildFailed(f"prometheus not ready:\n{self.child.tail()}") from None
            await asyncio.sleep(0.25)

    async def wait_scraped_after(self, wall: float, timeout_s: float = 60.0) -> float:
        """Wait for a successful scrape of the worker that began after ``wall`` (epoch s)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            self.child.check_alive()
            # timestamp() of a selector is the sample's (the scrape's start); of any other
            # expression it would be the query's own time.
            up = await self.query('up{job="funnel"}')
            at = await self.query('timestamp(up{job="funnel"})')
            if up and at and up[0][1] == 1 and at[0][1] > wall:
                return at[0][1]
            await asyncio.sleep(0.5)
        raise ChildFailed(f"prometheus: no scrape of the worker after {wall:.0f}")


def _get_json(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:  # 400 and 422 carry the error in JSON
        answer = json.loads(error.read())
    return answer
