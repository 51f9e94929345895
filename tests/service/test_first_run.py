"""First run end to end: `tad serve --demo` on an empty model directory, `tad replay` into it,
a real Prometheus scraping it and firing `TadAnomalyAlarm`, and a replayed SMD machine whose
online results equal the offline core's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from service.demo import demo_series
from tests.support.data import clone_bundle
from tests.support.processes import ROOT, ServerProcess, free_port, wait_for
from tests.support.results import assert_same_results, collect, reference

PROM_DIR = ROOT / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Exactly the README's first-run command, on an empty model directory."""
    root = tmp_path_factory.mktemp("first-run")
    models = root / "models"
    server = ServerProcess(
        {"TAD_MODEL_DIR": str(models)}, args=["--demo"], module="tad.cli", log=root / "server.log"
    )
    server.start(timeout=120)  # trains the demo bundle first
    yield server
    server.stop()


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def test_demo_bundle_is_trained_and_served(demo_server: ServerProcess) -> None:
    models = Path(demo_server.env["TAD_MODEL_DIR"])
    assert (models / "demo" / "manifest.json").is_file()
    listed = httpx.get(f"{demo_server.http}/v1/models").json()["models"]
    assert [(m["name"], m["active"]) for m in listed] == [("demo", True)]


def test_replay_prints_alarms_as_they_open_and_close(demo_server: ServerProcess) -> None:
    out = run_cli("replay", "--url", demo_server.ws, "--stream", "demo-1", "--demo", "--batch", "5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    opened = [ln for ln in lines if ln.startswith("ALARM OPENED")]
    closed = [ln for ln in lines if ln.startswith("ALARM CLOSED")]
    assert len(opened) == 1 and len(closed) == 1, out.stdout
    onset = float(opened[0].split("(onset ")[1].split(")")[0])
    assert 590 <= onset <= 610, "the fault is injected at point 600"
    assert "done: 1000 points sent, 1000 accepted" in lines[-1]


def test_replay_a_csv_with_timestamps(demo_server: ServerProcess, tmp_path: Path) -> None:
    x = demo_series(300, seed=5, anomaly=(200, 240), start=4000)
    csv = tmp_path / "stream.csv"
    lines = ["timestamp,vibration,flow,pressure,temperature"]  # any column order: by name
    for i, row in enumerate(x.tolist()):
        lines.append(",".join(repr(v) for v in [1_700_000_000 + 0.5 * i, *reversed(row)]))
    csv.write_text("\n".join(lines) + "\n")
    out = run_cli(
        "replay",
        "--url",
        demo_server.ws,
        "--stream",
        "csv-1",
        "--csv",
        str(csv),
        "--batch",
        "50",
        "--rate",
        "3000",
    )
    assert out.returncode == 0, out.stderr
    assert "ALARM OPENED  csv-1 #1" in out.stdout and "300 accepted" in out.stdout
    info = httpx.get(f"{demo_server.http}/v1/streams/csv-1").json()
    assert info["last_timestamp"] == 1_700_000_000 + 0.5 * 299


def test_replayed_smd_machine_equals_the_offline_core(
    demo_server: ServerProcess, tmp_path: Path
) -> None:
    from model_training.data.smd import load_smd
    from service.replay import ReplayData, replay

    models = Path(demo_server.env["TAD_MODEL_DIR"])
    names = [f"ch{i:02d}" for i in range(4)]
    bundle = clone_bundle(
        models / "demo",
        tmp_path / "machine-1-1",
        name="machine-1-1",
        version="smd1",
        channel_names=names,
    )
    shutil.copytree(bundle, models / "machine-1-1")
    assert (
        "machine-1-1: none → smd1"
        in httpx.post(f"{demo_server.http}/v1/models/reload").json()["changed"]
    )
    root = tmp_path / "SMD"
    test = demo_series(500, seed=11, anomaly=(300, 340), start=4000)
    for sub, arr in (
        ("train", demo_series(600, seed=1)),
        ("test", test),
        ("test_label", np.zeros((500, 1))),
    ):
        (root / sub).mkdir(parents=True)
        np.savetxt(root / sub / "machine-1-1.txt", arr, delimiter=",", fmt="%.17g")
    (ent,) = load_smd(root, ["machine-1-1"])
    replies: list[dict[str, Any]] = []
    data = ReplayData(ent.channel_names, np.asarray(ent.test, np.float64), None)
    summary = replay(
        demo_server.ws,
        "smd-1",
        data,
        batch=7,
        model="machine-1-1",
        echo=lambda _: None,
        on_result=replies.append,
    )
    assert summary.accepted == 500
    want = reference(bundle, np.asarray(ent.test, np.float64), stream_id="smd-1")
    got = collect(replies)
    # bit for bit: the service parses named channels column by column, and the core scores a
    # column-major batch row-major (a 1-ulp difference on 40 % of the scores before, issue 23)
    assert_same_results(got, want)
    assert want["events"], "the injected fault should alarm"
    # and the offline evaluator (`tad evaluate`) sees exactly what the service computed
    from detector.bundle import load_bundle
    from model_training.evaluate import run_entity

    run = run_entity(ent, load_bundle(bundle))
    for column in ("score", "evidence", "accumulated"):
        np.testing.assert_array_equal(got[column], getattr(run, column), err_msg=column)
    closed = [e for e in got["events"] if e["kind"] == "closed"]
    alarmed = np.zeros(len(run.predictions), np.int8)
    for e in closed:
        alarmed[e["onset_index"] : e["offset_index"] + 1] = 1
    assert closed and np.array_equal(alarmed, run.predictions)
    out = run_cli(
        "replay",
        "--url",
        demo_server.ws,
        "--stream",
        "smd-2",
        "--smd-root",
        str(root),
        "--entity",
        "machine-1-1",
        "--model",
        "machine-1-1",
        "--batch",
        "50",
    )
    assert out.returncode == 0 and "ALARM OPENED  smd-2" in out.stdout, out.stderr


@pytest.fixture(scope="module")
def prometheus(
    demo_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the prometheus binary is required (apt-get install prometheus)")
    root = tmp_path_factory.mktemp("prometheus")
    shutil.copy(PROM_DIR / "alerts.yml", root / "alerts.yml")  # the shipped rules, unchanged
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{demo_server.port}"]}]
    config.pop("alerting")
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'db'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=(root / "prometheus.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ok(f"{url}/-/ready"), 30, "prometheus ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _alarm_alerts(prom: str, stream: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{prom}/api/v1/alerts").json()["data"]["alerts"]
    return [
        a
        for a in alerts
        if a["labels"]["alertname"] == "TadAnomalyAlarm" and a["labels"]["stream"] == stream
    ]


def test_prometheus_fires_the_alarm_alert_on_an_injected_anomaly(
    demo_server: ServerProcess, prometheus: str
) -> None:
    x = demo_series(400, seed=21, anomaly=(300, 400), start=4000)
    pts = [{"seq": i, "values": r} for i, r in enumerate(x.tolist())]
    url = f"{demo_server.http}/v1/streams/prom-1/points"
    first = httpx.post(url, json={"model": "demo", "points": pts[:290]}).json()
    assert not first["events"]
    time.sleep(2.5)  # a few scrapes of the quiet stream: the alert must not fire on it
    assert _alarm_alerts(prometheus, "prom-1") == []
    second = httpx.post(url, json={"points": pts[290:]}).json()
    assert second["events"][0]["kind"] == "opened" and second["alarm"][-1]
    firing = wait_for(
        lambda: [a for a in _alarm_alerts(prometheus, "prom-1") if a["state"] == "firing"],
        45,
        "TadAnomalyAlarm to fire",
    )
    assert firing[0]["labels"]["model"] == "demo"
    assert firing[0]["annotations"]["summary"] == "Anomaly on stream prom-1 (model demo)"
    rules = httpx.get(f"{prometheus}/api/v1/rules").json()["data"]["groups"]
    assert {g["name"] for g in rules} == {"tad-anomalies", "tad-service"}


def test_docs_work_offline_and_describe_the_websockets(make_client: Callable[..., Any]) -> None:
    c = make_client()
    page = c.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert assets and all(a.startswith("/") for a in assets), assets  # nothing from a CDN
    for a in assets:
        assert c.get(a).status_code == 200, a
    info = c.get("/openapi.json").json()["info"]["description"]
    for needle in ("/v1/streams/{id}/ws", "/v1/ws", "1003", "1007", "1008", "1009", "1013"):
        assert needle in info, needle
    assert '{"points": [{"timestamp"' in info
