"""The shipped Prometheus files: promtool unit tests pass, would catch a broken rule, and every
metric the rules use is one the service exports."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.data import points, series
from tests.support.processes import ROOT

PROM_DIR = ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is required (apt-get install prometheus)")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def test_promtool_checks_and_unit_tests_pass(promtool: str) -> None:
    for args in (
        ("check", "rules", "alerts.yml"),
        ("check", "config", "prometheus.yml"),
        ("test", "rules", "alerts_test.yml"),
    ):
        out = subprocess.run(
            [promtool, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stdout + out.stderr


def test_the_rule_tests_fail_on_a_broken_alarm_rule(promtool: str, tmp_path: Path) -> None:
    rules = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    alarm = rules["groups"][0]["rules"][0]
    assert alarm["alert"] == "TadAnomalyAlarm"
    alarm["expr"] = "max by (stream, model) (tad_stream_alarm_active) == 2"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    shutil.copy(PROM_DIR / "alerts_test.yml", tmp_path)
    out = run(promtool, "test", "rules", str(tmp_path / "alerts_test.yml"))
    assert out.returncode != 0 and "TadAnomalyAlarm" in out.stdout + out.stderr


def test_every_metric_in_the_rules_is_exported(
    make_client: Callable[..., Any], mqtt_broker: str
) -> None:
    """With the MQTT subscriber on (its rules' series exist only then), against a real broker."""
    client = make_client(mqtt_url=mqtt_broker, mqtt_client_id=f"rules-{uuid.uuid4().hex[:8]}")
    client.post("/v1/streams/s/points", json={"points": points(series(30))})
    exported = {
        line.split("{")[0].split(" ")[0]
        for line in client.get("/metrics").text.splitlines()
        if line and not line.startswith("#")
    }
    used = set(re.findall(r"\btad_[a-z_]+", (PROM_DIR / "alerts.yml").read_text()))
    assert used and used <= exported, used - exported
    for name in (
        "tad_stream_alarm_active",
        "tad_stream_evidence",
        "tad_alarms_opened_total",
        "tad_points_accepted_total",
        "tad_points_rejected_total",
        "tad_scoring_latency_seconds_bucket",
        "tad_websocket_connections",
        "tad_model_info",
    ):
        assert name in exported, name
