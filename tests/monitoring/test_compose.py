"""docker-compose.yml: valid for docker-compose, and shaped as docs/operations.md says.

No Docker engine is needed: ``docker-compose config`` validates and resolves the file, and
the assertions read its resolved output, the configuration as the engine would get it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream.config.loading import load_settings
from tests.monitoring.sources import DATASOURCES, INFINITY, PROMETHEUS, REPO, load_yaml


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is missing: apt-get install docker-compose (make test does)")
    return subprocess.run(
        ["docker-compose", "--project-directory", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    """The resolved configuration, with the demo profile (every service)."""
    result = compose("--profile", "demo", "config")
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


@pytest.mark.parametrize("profile", [[], ["--profile", "demo"]], ids=["default", "demo"])
def test_compose_config_is_valid(profile: list[str]) -> None:
    result = compose(*profile, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_kafka_is_apache_kafka_4_in_kraft_mode(stack: dict[str, Any]) -> None:
    kafka = stack["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}


def test_workers_scale_and_are_reachable_by_prometheus(stack: dict[str, Any]) -> None:
    worker = stack["services"]["worker"]
    # --scale worker=3 needs replicas that do not collide on a name or a host port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == ["worker"] and "build" in worker
    env = worker["environment"]
    assert env["FUNNEL_WEB_BIND"] == "0.0.0.0"
    assert env["FUNNEL_BROKER"] == "kafka:9092"
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert stack["services"]["topics"]["command"] == ["topics"]
    # Prometheus discovers every replica by the service name, on the worker's port.
    job = next(j for j in load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"])
    assert job["job_name"] == "funnel"
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and str(sd["port"]) == env["FUNNEL_WEB_PORT"]


def test_the_generator_runs_only_in_the_demo_profile(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert set(services) == {
        *("kafka", "topics", "worker", "ingest", "generator", "prometheus", "alertmanager"),
        "grafana",
    }
    assert services["generator"]["profiles"] == ["demo"]
    assert services["generator"]["command"][0] == "generate"
    assert [name for name, s in services.items() if "profiles" in s] == ["generator"]


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path → host path of the service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):  # docker-compose 1.x: "source:target[:mode]"
            source, target, *_ = volume.split(":")
            volume = {"type": "bind" if source.startswith("/") else "volume"}
            volume.update(source=source, target=target)
        if volume["type"] == "bind":
            out[volume["target"]] = Path(volume["source"])
    return out


def test_every_bind_mount_exists_in_the_repository(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        for target, source in _mounts(service).items():
            assert source.exists(), f"{name}: {source} (for {target}) is missing"
            assert source.resolve().is_relative_to(REPO.resolve()), f"{name}: {source}"


def test_prometheus_alertmanager_and_grafana_get_the_projects_files(
    stack: dict[str, Any],
) -> None:
    services = stack["services"]
    prometheus = _mounts(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == REPO / "prometheus" / "prometheus.yml"
    assert prometheus["/etc/prometheus/rules"] == REPO / "prometheus" / "rules"
    assert "/etc/prometheus/rules/*.yml" in load_yaml(PROMETHEUS / "prometheus.yml")["rule_files"]
    alertmanager = _mounts(services["alertmanager"])
    assert alertmanager["/etc/alertmanager/alertmanager.yml"] == (
        REPO / "alertmanager" / "alertmanager.yml"
    )
    grafana = _mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == REPO / "grafana" / "provisioning"
    provider = load_yaml(REPO / "grafana" / "provisioning" / "dashboards" / "funnel.yml")
    path = provider["providers"][0]["options"]["path"]
    assert grafana[path] == REPO / "grafana" / "dashboards"


def test_the_stacks_configuration_sets_every_target_the_dashboards_draw(
    stack: dict[str, Any],
) -> None:
    worker = stack["services"]["worker"]
    config = _mounts(worker)[worker["environment"]["FUNNEL_CONFIG"]]
    settings = load_settings(config, environ={})  # refused configurations raise
    assert settings.sla.marketing.mql_per_month > 0 and settings.sla.marketing.sql_per_month > 0
    assert settings.north_star.revenue_goal > 0
    assert settings.sla.business_hours is not None
    assert settings.labels.team


def test_the_ingest_gateway_takes_its_secrets_from_the_environment(stack: dict[str, Any]) -> None:
    ingest = stack["services"]["ingest"]
    assert ingest["command"] == ["ingest"] and "build" in ingest
    env = ingest["environment"]
    assert (env["FUNNEL_INGEST_BIND"], env["FUNNEL_BROKER"]) == ("0.0.0.0", "kafka:9092")
    assert "FUNNEL_INGEST_WRITE_KEYS" in env and "FUNNEL_HUBSPOT_APP_SECRET" in env
    (port,) = ingest["ports"]
    published = port if isinstance(port, str) else f"{port['host_ip']}:{port['published']}"
    assert published.startswith("127.0.0.1:8088")
    assert ingest["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    jobs = load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"]
    (sd,) = next(j for j in jobs if j["job_name"] == "funnel-ingest")["dns_sd_configs"]
    assert sd["names"] == ["ingest"] and str(sd["port"]) == env["FUNNEL_INGEST_PORT"]


def test_grafana_installs_infinity_and_reads_the_workers_lead_list(stack: dict[str, Any]) -> None:
    services = stack["services"]
    plugins = services["grafana"]["environment"]["GF_INSTALL_PLUGINS"].split(",")
    (infinity,) = [p for p in plugins if p.split()[0] == INFINITY]
    assert re.fullmatch(rf"{INFINITY} \d+\.\d+\.\d+", infinity)  # a pinned version
    (source,) = load_yaml(DATASOURCES / "infinity.yml")["datasources"]
    assert source["type"] == INFINITY
    # The only URL it may ask is the workers' /leads, by the service name and web port that
    # every replica has (any of them answers for the group).
    (allowed,) = source["jsonData"]["allowedHosts"]
    url = urllib.parse.urlsplit(allowed)
    worker = services["worker"]
    assert url.hostname == "worker"  # the service name, which Docker's DNS resolves
    assert str(url.port) == worker["environment"]["FUNNEL_WEB_PORT"]
    assert str(url.port) in [str(port) for port in worker["expose"]]
    assert url.path == "/leads"
