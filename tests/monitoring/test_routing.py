"""Alertmanager: the configuration is valid and every alert reaches the people who act on it.

``amtool config routes test`` resolves a label set against the routing tree exactly as
Alertmanager does; each alert rule's labels (with a team, topic and instance, as a real
alert has) must land on the receiver docs/operations.md names for its owner and severity.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.monitoring.sources import REPO, rules

CONFIG = REPO / "alertmanager" / "alertmanager.yml"
RECEIVERS = {
    ("platform", "critical"): "platform-pager",
    ("platform", "warning"): "platform-tickets",
    ("sales", "critical"): "sales-pager",
    ("sales", "warning"): "sales-tickets",
    ("marketing", "warning"): "marketing-tickets",
}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("amtool") is None:
        pytest.fail("amtool is missing: apt-get install prometheus-alertmanager")
    return subprocess.run(
        ["amtool", *args], capture_output=True, text=True, timeout=30, check=False, cwd=REPO
    )


def test_alertmanager_config_is_valid() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_reaches_the_receiver_of_its_owner_and_severity() -> None:
    for rule in rules():
        if not rule.is_alert:
            continue
        labels = {"alertname": rule.name, **rule.body["labels"]}
        labels.update(team="sales-emea", topic="funnel.visits", instance="10.0.0.7:6066")
        expected = RECEIVERS[(labels["owner"], labels["severity"])]
        result = amtool(
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            *(f"{k}={v}" for k, v in labels.items()),
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [expected], f"{labels} went to {result.stdout}"


def test_an_unknown_alert_still_reaches_someone() -> None:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", "alertname=Other")
    assert result.stdout.split() == ["platform-tickets"]
