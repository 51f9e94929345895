"""The compose stack on loopback, without Docker: redis-server, the service, the proxy,
Prometheus and Alertmanager started with the commands and environment docker-compose.yml and the
Dockerfile give their containers. An anomalous stream replayed through the proxy raises
TadAnomalyAlarm in Alertmanager; every compose health check passes; Redis keeps the state over
a crash; the `train` service puts a bundle in the models volume that a reload serves.

One module-scoped stack; every wait is bounded (the whole module takes ~30 s). One file of ~400
lines because every check runs on that one stack.
"""

from __future__ import annotations

import functools
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.demo import DEMO_CHANNELS, demo_series
from tests.deploy.stack import (
    VENV_BIN,
    Localizer,
    dashboard_queries,
    dockerfile_stages,
    haproxy_config,
    healthcheck_argv,
    http_ok,
    image_paths,
    load_compose,
    mounts,
    prometheus_config,
    require_binary,
    resolve_program,
    run_healthcheck,
    service_healthcheck,
    service_process,
    wait_up,
)
from tests.support.processes import ROOT, ManagedProcess, free_port, wait_for

KEY = "stack-key-7f3a9c"  # TAD_API_KEYS in the user's .env, and Prometheus' metrics key
STREAM = "plant-1"
N_SENT = 650  # the demo fault starts at point 600: the alarm is open when the replay ends


@dataclass
class Stack:
    tmp: Path
    compose: dict[str, Any]
    procs: dict[str, ManagedProcess]
    ports: dict[str, int]
    loc: dict[str, Localizer]
    models: Path

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.ports['proxy']}"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def alertmanager(self) -> str:
        return f"http://127.0.0.1:{self.ports['alertmanager']}"


def build_seed(tmp: Path) -> Path:
    """The Dockerfile's `demo` stage: its last RUN, localized (needs torch, as that stage has)."""
    stage = dockerfile_stages()["demo"]
    argv = shlex.split(stage.all("RUN")[-1])
    seed = tmp / "image" / "seed-models"
    loc = Localizer({"/opt/tad/seed-models": seed})
    argv = [sys.executable if a == "python" else loc(a) for a in argv]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return seed


def runtime_seed_dest() -> str:
    (dst,) = [d for f, _, d in dockerfile_stages()["runtime"].copies() if f.get("from") == "demo"]
    return dst


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binaries = {
        "redis": require_binary("redis-server"),
        "redis-cli": require_binary("redis-cli"),
        "prometheus": require_binary("prometheus"),
        "alertmanager": require_binary("prometheus-alertmanager"),
        "proxy": require_binary("haproxy"),
    }
    tmp = tmp_path_factory.mktemp("stack")
    key_file = tmp / "metrics-key"
    key_file.write_text(KEY + "\n")
    user_env = {
        "GRAFANA_ADMIN_PASSWORD": "unused-here",
        "TAD_API_KEYS": f"{KEY},another-key",
        "TAD_METRICS_KEY_FILE": str(key_file),
        "TAD_TRAIN_DATA": str(tmp / "train-data"),
    }
    compose = load_compose(user_env)
    svcs = compose["services"]
    ports = {n: free_port() for n in ("redis", "service", "proxy", "prometheus", "alertmanager")}
    addresses = {
        "redis:6379": f"127.0.0.1:{ports['redis']}",
        "service:8000": f"127.0.0.1:{ports['service']}",
        "alertmanager:9093": f"127.0.0.1:{ports['alertmanager']}",
        "localhost:9090": f"127.0.0.1:{ports['prometheus']}",
    }
    logs = tmp / "logs"
    logs.mkdir()
    procs: dict[str, ManagedProcess] = {}
    loc: dict[str, Localizer] = {}

    seed = build_seed(tmp)
    try:
        # redis: the compose command, its /data volume, a loopback port
        loc["redis"] = Localizer(mounts(svcs["redis"], tmp), addresses)
        argv = loc["redis"].argv(svcs["redis"]["command"])
        assert argv[0] == "redis-server"
        argv = [binaries["redis"], *argv[1:], "--port", str(ports["redis"]), "--bind", "127.0.0.1"]
        procs["redis"] = ManagedProcess("redis", argv, logs / "redis.log").start()

        # alertmanager: the compose command, its config as mounted, a loopback port
        loc["alertmanager"] = Localizer(
            mounts(svcs["alertmanager"], tmp), {"127.0.0.1:9093": addresses["alertmanager:9093"]}
        )
        argv = [
            binaries["alertmanager"],
            *loc["alertmanager"].argv(svcs["alertmanager"]["command"]),
            f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
        ]
        procs["alertmanager"] = ManagedProcess("alertmanager", argv, logs / "am.log").start()

        # the service: entry point + command of the image/compose, environment localized
        models_loc = mounts(svcs["service"], tmp)
        loc["service"] = Localizer(
            {
                **image_paths(dockerfile_stages()["runtime"]),
                **models_loc,
                runtime_seed_dest(): seed,
            },
            addresses,
        )
        procs["service"] = service_process(
            compose, tmp, ports["service"], loc["service"], logs / "service.log"
        )
        wait_up(
            procs["redis"],
            lambda: _redis_ping(binaries["redis-cli"], ports["redis"]),
            15,
            "redis-server",
        )
        procs["service"].start()

        # prometheus: the compose config with loopback targets and 1 s intervals
        prom_mounts = mounts(svcs["prometheus"], tmp)
        etc = tmp / "etc-prometheus"
        shutil.copytree(prom_mounts["/etc/prometheus"], etc)
        for dst, src in prom_mounts.items():  # files mounted inside /etc/prometheus
            if dst.startswith("/etc/prometheus/"):
                shutil.copy(src, etc / dst.removeprefix("/etc/prometheus/"))
        prom_mounts["/etc/prometheus"] = etc
        loc["prometheus"] = Localizer(prom_mounts, {"127.0.0.1:9090": addresses["localhost:9090"]})
        argv = [
            binaries["prometheus"],
            *loc["prometheus"].argv(svcs["prometheus"]["command"]),
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        ]
        config_path = Path(next(a for a in argv if a.startswith("--config.file=")).split("=")[1])
        config = yaml.safe_load(config_path.read_text())
        local = {
            "service": [addresses["service:8000"]],
            "alertmanager:9093": [addresses["alertmanager:9093"]],
            "localhost:9090": [addresses["localhost:9090"]],
        }
        config_path.write_text(yaml.safe_dump(prometheus_config(config, local)))
        procs["prometheus"] = ManagedProcess("prometheus", argv, logs / "prometheus.log").start()

        # the proxy: deploy/haproxy/haproxy.cfg with the one loopback replica
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(haproxy_config([ports["service"]], ports["proxy"]))
        loc["proxy"] = Localizer({}, {"127.0.0.1:8080": f"127.0.0.1:{ports['proxy']}"})
        procs["proxy"] = ManagedProcess(
            "proxy", [binaries["proxy"], "-W", "-db", "-f", str(cfg)], logs / "proxy.log"
        )

        hc = service_healthcheck(compose)
        wait_up(
            procs["service"],
            lambda: run_healthcheck(hc, procs["service"].env) == 0,
            60,
            "the service's compose health check",
        )
        procs["proxy"].start()
        for name in ("alertmanager", "prometheus", "proxy"):
            argv = loc[name].argv(healthcheck_argv(svcs[name]))
            healthy = functools.partial(_passes, argv)
            wait_up(procs[name], healthy, 30, f"{name} healthy")
        yield Stack(tmp, compose, procs, ports, loc, models_loc["/models"])
    finally:
        for p in reversed(list(procs.values())):
            p.stop()


def _passes(argv: list[str]) -> bool:
    return run_healthcheck(argv) == 0


def _redis_ping(cli: str, port: int) -> bool:
    out = subprocess.run([cli, "-p", str(port), "ping"], capture_output=True, text=True)
    return out.stdout.strip() == "PONG"


def auth() -> dict[str, str]:
    return {"X-API-Key": KEY}


def test_first_up_on_an_empty_volume_serves_the_demo_bundle(stack: Stack) -> None:
    assert (stack.models / "demo" / "manifest.json").is_file(), "seeded from the image"
    assert "seeded" in stack.procs["service"].log()
    listed = httpx.get(f"{stack.proxy}/v1/models", headers=auth()).json()["models"]
    assert [(m["name"], m["active"]) for m in listed] == [("demo", True)]
    assert httpx.get(f"{stack.proxy}/v1/models").status_code == 401, "TAD_API_KEYS applies"
    ready = httpx.get(f"{stack.proxy}/readyz").json()
    assert ready["store"] == "redis" and ready["store_ok"] is True


def test_every_compose_health_check_passes(stack: Stack) -> None:
    svcs = stack.compose["services"]
    redis_hc = healthcheck_argv(svcs["redis"])
    cli = shutil.which(redis_hc[0])
    assert cli is not None
    out = subprocess.run(
        [cli, "-p", str(stack.ports["redis"]), *redis_hc[1:]], capture_output=True, text=True
    )
    assert out.stdout.strip() == "PONG"
    for name in ("alertmanager", "prometheus", "proxy"):
        assert run_healthcheck(stack.loc[name].argv(healthcheck_argv(svcs[name]))) == 0, name
    # the image's HEALTHCHECK is the compose one
    stage = dockerfile_stages()["runtime"]
    assert stage.json("HEALTHCHECK") == healthcheck_argv(svcs["service"])


def test_a_replayed_anomaly_reaches_alertmanager(stack: Stack) -> None:
    t0 = time.monotonic()
    out = subprocess.run(
        [
            str(VENV_BIN / "tad"),
            "replay",
            "--url",
            f"ws://127.0.0.1:{stack.ports['proxy']}",
            "--stream",
            STREAM,
            "--demo",
            "--batch",
            "10",
            "--limit",
            str(N_SENT),
        ],
        env={**_clean_env(), "TAD_API_KEY": KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"ALARM OPENED  {STREAM} #1" in out.stdout
    assert f"done: {N_SENT} points sent, {N_SENT} accepted" in out.stdout

    def alert() -> list[dict[str, Any]]:
        got = httpx.get(
            f"{stack.alertmanager}/api/v2/alerts",
            params={"filter": 'alertname="TadAnomalyAlarm"'},
            timeout=5,
        ).json()
        return [a for a in got if a["labels"].get("stream") == STREAM]

    (fired,) = wait_for(alert, 40, "TadAnomalyAlarm in Alertmanager")
    assert fired["labels"]["model"] == "demo" and fired["labels"]["severity"] == "warning"
    assert fired["status"]["state"] == "active"
    assert fired["annotations"]["summary"] == f"Anomaly on stream {STREAM} (model demo)"
    assert time.monotonic() - t0 < 60

    # Prometheus scraped with the key file; without a key /metrics is refused
    targets = httpx.get(f"{stack.prometheus}/api/v1/targets").json()["data"]["activeTargets"]
    tad = [t for t in targets if t["labels"]["job"] == "tad"]
    assert tad and all(t["health"] == "up" for t in tad), tad
    assert httpx.get(f"{stack.proxy}/metrics").status_code == 401


def test_dashboard_queries_run_on_the_live_prometheus(stack: Stack) -> None:
    wait_for(
        lambda: _query(stack, "max by (stream) (tad_stream_alarm_active)"),
        20,
        "per-stream gauges in Prometheus",
    )
    for title, expr in dashboard_queries(rate_interval="1m", range_="5m", stream=".*"):
        body = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": expr}).json()
        assert body["status"] == "success", (title, expr, body)
    (open_alarms,) = _query(stack, "count(max by (stream, model) (tad_stream_alarm_active) == 1)")
    assert float(open_alarms["value"][1]) >= 1
    evidence = _query(stack, f'max by (stream) (tad_stream_evidence{{stream="{STREAM}"}})')
    assert float(evidence[0]["value"][1]) > 0


def _query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{stack.prometheus}/api/v1/query", params={"query": expr}).json()
    return list(body["data"]["result"])


def test_redis_keeps_stream_state_over_a_crash(stack: Stack) -> None:
    redis = stack.procs["redis"]
    time.sleep(1.2)  # appendfsync everysec: what was acknowledged over a second ago is on disk
    redis.kill9()
    data = stack.loc["redis"].paths["/data"]
    assert any(p.name.startswith("appendonly") for p in data.iterdir()), list(data.iterdir())
    redis.start()
    cli = shutil.which("redis-cli")
    assert cli is not None
    wait_up(redis, lambda: _redis_ping(cli, stack.ports["redis"]), 15, "redis-server again")
    wait_for(lambda: http_ok(f"{stack.proxy}/readyz"), 20, "service ready again")
    info = httpx.get(f"{stack.proxy}/v1/streams/{STREAM}", headers=auth()).json()
    assert info["count"] == N_SENT
    assert info["open_alarm"] is not None and info["open_alarm"]["alarm_id"] == 1
    # and it continues where it stopped
    x = demo_series(1000, seed=7, anomaly=(600, 660), start=4000)[N_SENT : N_SENT + 5]
    pts = [{"seq": N_SENT + i, "values": r} for i, r in enumerate(x.tolist())]
    r = httpx.post(
        f"{stack.proxy}/v1/streams/{STREAM}/points", json={"points": pts}, headers=auth()
    )
    assert r.status_code == 200 and r.json()["accepted"] == 5, r.text


def test_the_train_service_adds_a_bundle_a_reload_serves(stack: Stack) -> None:
    svc = stack.compose["services"]["train"]
    stage = dockerfile_stages()["trainer"]
    volumes = mounts(svc, stack.tmp)
    volumes["/models"] = stack.models  # the same named volume as the service's
    data = volumes["/data"]
    data.mkdir(parents=True, exist_ok=True)
    x = demo_series(1500, seed=2)
    rows = ["timestamp," + ",".join(DEMO_CHANNELS)]
    rows += [f"{1_700_000_000 + i}," + ",".join(f"{v:.6f}" for v in r) for i, r in enumerate(x)]
    (data / "train.csv").write_text("\n".join(rows) + "\n")
    loc = Localizer({**image_paths(stage), **volumes})
    # `docker compose run --rm train` with the compose command and a small model for speed
    argv = stage.json("ENTRYPOINT") + svc["command"]
    argv += ["--epochs", "1", "--d-model", "16", "--expansion", "1"]
    argv = resolve_program(loc.argv(argv), image_paths(stage))
    env = {**_clean_env(), **stage.env(), **{k: loc(str(v)) for k, v in svc["environment"].items()}}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "is ready" in out.stdout
    made = [p for p in stack.models.iterdir() if p.name.startswith("train-")]
    assert len(made) == 1 and (made[0] / "manifest.json").is_file(), list(stack.models.iterdir())
    assert not any((stack.models / ".staging").iterdir()), "staging is cleaned up"

    r = httpx.post(f"{stack.proxy}/v1/models/reload", headers=auth())
    assert r.status_code == 200, r.text
    names = {m["name"] for m in r.json()["models"] if m["active"]}
    assert names == {"demo", "train"}, r.json()
    info = httpx.get(f"{stack.proxy}/v1/streams/{STREAM}", headers=auth()).json()
    assert info["count"] == N_SENT + 5 and info["model"] == "demo"


def _clean_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TAD_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_sigterm_stops_every_process_cleanly(stack: Stack) -> None:
    """Compose stops a container with SIGTERM, then SIGKILL after stop_grace_period: the service
    (PID 1's child under `init: true`, exec'd by the entry point) shuts down gracefully in time.
    uvicorn re-raises the signal after its shutdown, so the status is 'terminated by SIGTERM'
    (Docker shows 143), not a SIGKILL."""
    svc = stack.procs["service"]
    grace = float(str(stack.compose["services"]["service"]["stop_grace_period"]).rstrip("s"))
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGTERM)
    assert svc.proc.wait(timeout=grace) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in svc.log()
