"""The deployment files themselves: Dockerfile, .dockerignore, pinned requirements,
docker-compose.yml (validated by Debian's docker-compose too), the Grafana dashboard, the
Prometheus/Alertmanager/HAProxy configs, and the generated configuration reference.

One file of ~430 lines: each file's checks are short, and together they are the deployment's
static contract."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from service.settings import ENV_PREFIX, Settings, load_settings
from tests.deploy.stack import (
    ComposeError,
    dashboard_queries,
    dockerfile_stages,
    environment,
    healthcheck_argv,
    interpolate,
    load_compose,
    require_binary,
)
from tests.support.processes import ROOT

DOCKER = ROOT / "deploy" / "docker"
TRAINING_ONLY = {"torch", "onnx", "onnxscript", "optuna"}
SERVICES = {
    "redis",
    "service",
    "proxy",
    "prometheus",
    "alertmanager",
    "grafana",
    "train",
    "worker",
    "mosquitto",
}
USER_ENV = {"GRAFANA_ADMIN_PASSWORD": "pw"}


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            out[name.lower().replace("_", "-")] = version
    return out


def pyproject() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# ---------------------------------------------------------------------------------------------
# Dockerfile


def test_dockerfile_has_runtime_gpu_and_trainer_targets() -> None:
    stages = dockerfile_stages()
    assert {"runtime", "gpu", "trainer", "demo"} <= set(stages)
    assert list(stages)[-1] == "runtime", "a plain `docker build .` gives the slim runtime"
    externals = [s.base for s in stages.values() if s.base not in stages]
    for image in externals:
        name, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{image} is not pinned"
    assert stages["gpu"].base.startswith("nvidia/cuda:")


def test_runtime_image_has_no_training_packages() -> None:
    stages = dockerfile_stages()
    runtime = pins(DOCKER / "requirements.txt")
    assert not TRAINING_ONLY & set(runtime), "the runtime lock must not pull torch"
    assert "onnxruntime" in runtime
    venv_sources = [
        f.get("from") for f, src, dst in stages["runtime"].copies() if dst == "/opt/venv"
    ]
    assert venv_sources == ["venv-slim"], "the runtime copies the torch-free virtualenv"
    assert stages["venv-slim"].base == "venv"
    assert not any("requirements-train" in r for r in stages["venv"].all("RUN"))
    train = pins(DOCKER / "requirements-train.txt")
    assert "torch" in train and train["torch"].endswith("+cpu"), "CPU wheels for the trainer"
    gpu_runs = " ".join(stages["gpu"].all("RUN"))
    assert "onnxruntime-gpu==" in gpu_runs and "grep -v '^onnxruntime=='" in gpu_runs


def test_pins_satisfy_pyproject() -> None:
    """Every dependency of the project is pinned, within the range pyproject.toml allows
    (re-run deploy/docker/lock.py after changing pyproject.toml)."""
    project = pyproject()["project"]
    runtime = pins(DOCKER / "requirements.txt")
    train = pins(DOCKER / "requirements-train.txt")
    for spec, lock in [(d, runtime) for d in project["dependencies"]] + [
        (d, {**runtime, **train}) for d in project["optional-dependencies"]["train"]
    ]:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in lock, f"{name} is not pinned: run deploy/docker/lock.py"
        version = lock[name].split("+")[0]
        assert req.specifier.contains(version, prereleases=True), (spec, lock[name])
    assert not set(runtime) & set(train), "requirements-train.txt only adds to the runtime"


def test_images_run_unprivileged_with_a_health_check_and_no_secrets() -> None:
    stages = dockerfile_stages()
    compose = load_compose(USER_ENV)
    for name in ("runtime", "gpu", "trainer"):
        user = stages[name].user()
        uid = user.split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{name}: USER {user} (numeric, not root)"
    assert stages["runtime"].user() == compose["services"]["service"]["user"]
    assert stages["trainer"].user() == compose["services"]["train"]["user"]
    for name in ("runtime", "gpu"):
        assert stages[name].json("HEALTHCHECK") == healthcheck_argv(compose["services"]["service"])
        assert stages[name].json("CMD") == compose["services"]["service"]["command"]
    secretish = re.compile(r"KEY|SECRET|PASSW|TOKEN|CREDENTIAL", re.IGNORECASE)
    for stage in stages.values():
        for instr in ("ENV", "ARG"):
            for rest in stage.all(instr):
                for word in rest.split():
                    name = word.split("=")[0]
                    assert not secretish.search(name), f"{stage.name}: {instr} {word}"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    ignored = False
    for pat in patterns:
        neg = pat.startswith("!")
        pat = pat[1:] if neg else pat
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(
            fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes
        ):
            ignored = not neg
    return ignored


def test_dockerignore_keeps_the_context_to_what_the_dockerfile_copies() -> None:
    patterns = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for stage in dockerfile_stages().values():
        for flags, src, _ in stage.copies():
            if "from" in flags:
                continue
            assert (ROOT / src).exists(), src
            assert not dockerignored(src, patterns), f"{src} is excluded from the build context"
    for private in (
        ".git",
        ".venv",
        ".env",
        "models",
        "runs",
        "data",
        "tests",
        "bench",
        "service/__pycache__/x.pyc",
        "deploy/k8s/secret.example.yaml",
    ):
        assert dockerignored(private, patterns), private


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        hadolint = Path(require_binary("hadolint"))
    out = subprocess.run([str(hadolint), "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------------------------------------
# docker-compose.yml


def test_every_compose_service_has_a_health_check_and_a_pinned_image() -> None:
    services = load_compose(USER_ENV)["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        assert healthcheck_argv(svc), name
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), (name, image)
    assert services["train"]["profiles"] == ["train"], "`up` does not train"
    assert services["worker"]["profiles"] == ["train"], "the worker comes with --profile train"
    assert services["mosquitto"]["profiles"] == ["mqtt"], "the broker comes with --profile mqtt"
    optional = ("train", "worker", "mosquitto")
    assert all("profiles" not in s for n, s in services.items() if n not in optional)


def test_compose_wiring() -> None:
    s = load_compose(USER_ENV)["services"]
    # redis persists (AOF + RDB) on a volume and never evicts stream state
    cmd = s["redis"]["command"]
    assert cmd[cmd.index("--appendonly") + 1] == "yes" and "--save" in cmd
    assert cmd[cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert "redis-data:/data" in s["redis"]["volumes"]
    # the service: waits for a healthy redis, models from the volume, scalable (no host port)
    svc = s["service"]
    assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "models:/models" in svc["volumes"] and "ports" not in svc
    env = environment(svc)
    assert env["TAD_REDIS_URL"] == "redis://redis:6379/0" and env["TAD_MODEL_DIR"] == "/models"
    assert env["TAD_PORT"] == "8000" and env["TAD_HOST"] == "0.0.0.0"
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    # the proxy publishes the one address and reaches the replicas on TAD_PORT
    assert s["proxy"]["ports"] == ["8000:8080"]
    cfg = (ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    assert re.search(r"^\s*bind :8080$", cfg, re.MULTILINE)
    assert re.search(r"server-template \S+ \d+ service:8000$", cfg, re.MULTILINE)
    assert "option httpchk GET /readyz" in cfg
    # prometheus: rules from deploy/prometheus, every replica a target, alerts to alertmanager
    prom_cfg = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.compose.yml").read_text())
    assert prom_cfg["rule_files"] == ["alerts.yml"]
    tad = next(j for j in prom_cfg["scrape_configs"] if j["job_name"] == "tad")
    assert (
        tad["dns_sd_configs"][0]["names"] == ["service"]
        and tad["dns_sd_configs"][0]["port"] == 8000
    )
    am = prom_cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["alertmanager:9093"]
    assert any(c.endswith("prometheus.compose.yml") for c in s["prometheus"]["command"])
    # bind mounts exist in the repository
    for svc_ in s.values():
        for vol in svc_.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("./") and "data" not in src:
                assert (ROOT / src).exists(), vol


def test_the_worker_shares_the_services_redis_and_models() -> None:
    """`tad worker` takes the service's jobs from the same Redis and prefix and writes bundles
    into the same models volume, as the trainer image's user."""
    s = load_compose(USER_ENV)["services"]
    worker, svc = s["worker"], s["service"]
    w_env, s_env = environment(worker), environment(svc)
    for key in ("TAD_REDIS_URL", "TAD_REDIS_PREFIX", "TAD_MODEL_DIR"):
        assert w_env[key] == s_env[key], key
    assert "models:/models" in worker["volumes"] and worker["entrypoint"] == ["tad", "worker"]
    assert worker["user"] == s["train"]["user"] and worker["read_only"] is True
    assert healthcheck_argv(worker) == ["tad", "worker", "--check"]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_grafana_password_is_required() -> None:
    with pytest.raises(ComposeError, match="GRAFANA_ADMIN_PASSWORD"):
        load_compose({})
    assert interpolate("${X:-a}/${Y-b}/$${Z}", {"Y": ""}) == "a//${Z}"


def test_compose_defaults_are_the_service_defaults(tmp_path: Path) -> None:
    """A variable left unset gives the service exactly its own default."""
    env = environment(load_compose(USER_ENV)["services"]["service"])
    names = {ENV_PREFIX + f.upper() for f in Settings.model_fields}
    assert names <= set(env), f"not passed by compose: {sorted(names - set(env))}"
    given = {k.removeprefix(ENV_PREFIX).lower(): v for k, v in env.items() if k in names}
    given["model_dir"] = str(tmp_path)
    for fixed in ("host", "port", "redis_url"):
        given.pop(fixed)
    old = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(ENV_PREFIX)}
    try:
        os.environ.update({ENV_PREFIX + k.upper(): v for k, v in given.items()})
        from_compose = load_settings()
        for k in given:
            os.environ.pop(ENV_PREFIX + k.upper())
        defaults = load_settings(model_dir=tmp_path)
    finally:
        os.environ.update(old)
    for field in given:
        assert getattr(from_compose, field) == getattr(defaults, field), field


def test_configuration_reference_is_up_to_date() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "config_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _docker_compose() -> str:
    return require_binary("docker-compose")


def test_docker_compose_validates_the_files_and_agrees_with_the_tests() -> None:
    """Debian's docker-compose (no engine needed for `config`) accepts the file, refuses it
    without the Grafana password, and resolves the same commands and environment the loopback
    tests run."""
    dc = _docker_compose()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TAD_", "GRAFANA_"))},
        "GRAFANA_ADMIN_PASSWORD": "pw",
        "TAD_API_KEYS": "k1,k2",
        "TAD_LOG_LEVEL": "debug",
    }
    files = ["-f", "docker-compose.yml"]
    out = subprocess.run([dc, *files, "config"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    resolved = yaml.safe_load(out.stdout)["services"]
    ours = load_compose(env)["services"]
    for name in ("redis", "service", "prometheus", "alertmanager"):
        assert [str(c) for c in resolved[name].get("command", [])] == [
            str(c) for c in ours[name].get("command", [])
        ], name
        assert resolved[name]["healthcheck"]["test"] == ours[name]["healthcheck"]["test"], name
    assert environment(resolved["service"]) == environment(ours["service"])
    assert environment(resolved["service"])["TAD_LOG_LEVEL"] == "debug"

    gpu = [*files, "-f", "deploy/docker-compose.gpu.yml", "--profile", "train"]
    out = subprocess.run(
        [dc, *gpu, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr

    env.pop("GRAFANA_ADMIN_PASSWORD")
    out = subprocess.run(
        [dc, *files, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in out.stderr


# ---------------------------------------------------------------------------------------------
# Grafana, Prometheus, Alertmanager


def test_dashboard_is_provisioned_on_the_prometheus_datasource() -> None:
    grafana = ROOT / "deploy" / "grafana"
    ds = yaml.safe_load((grafana / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dash = json.loads((grafana / "dashboards" / "tad.json").read_text())
    uids = {p["datasource"]["uid"] for p in dash["panels"] if p["type"] != "row"} | {
        t["datasource"]["uid"] for p in dash["panels"] for t in p.get("targets", [])
    }
    assert uids == {source["uid"]}
    provider = yaml.safe_load((grafana / "provisioning/dashboards/tad.yml").read_text())
    services = load_compose(USER_ENV)["services"]
    mounted = {v.split(":")[1] for v in services["grafana"]["volumes"]}
    assert provider["providers"][0]["options"]["path"] in mounted
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("alarm", "evidence", "throughput", "latency", "rejected"):
        assert topic in titles, topic


def test_dashboard_queries_parse_and_use_exported_metrics(
    tmp_path: Path, bundle_v1: Path, mqtt_broker: str
) -> None:
    """promtool parses every query (as a recording rule), and every `tad_*` series in them is
    one the service exports (with the MQTT subscriber on, against a real broker: its panels'
    series exist only then)."""
    promtool = require_binary("promtool")
    queries = dashboard_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:q{i}", "expr": expr}
                    for i, (_, expr) in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    out = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr

    import shutil

    from fastapi.testclient import TestClient

    from service.app import create_app
    from tests.support.data import points, series

    models = tmp_path / "models"
    shutil.copytree(bundle_v1, models / "demo")
    settings = load_settings(model_dir=models, mqtt_url=mqtt_broker, mqtt_client_id="dashboard")
    with TestClient(create_app(settings)) as client:
        client.post("/v1/streams/s/points", json={"points": points(series(40))})
        exported = {
            line.split("{")[0].split(" ")[0]
            for line in client.get("/metrics").text.splitlines()
            if line and not line.startswith("#")
        }
    used = {m for _, e in queries for m in re.findall(r"\btad_[a-z_]+", e)}
    assert used and used <= exported, sorted(used - exported)


def test_alertmanager_config_is_valid() -> None:
    amtool = require_binary("amtool")
    path = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    out = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    cfg = yaml.safe_load(path.read_text())
    names = {r["name"] for r in cfg["receivers"]}
    assert cfg["route"]["receiver"] in names
    assert all(r["receiver"] in names for r in cfg["route"]["routes"])


def test_prometheus_compose_config_is_valid() -> None:
    promtool = require_binary("promtool")
    out = subprocess.run(
        [promtool, "check", "config", "prometheus.compose.yml"],
        cwd=ROOT / "deploy" / "prometheus",
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_haproxy_config_is_valid() -> None:
    haproxy = require_binary("haproxy")
    out = subprocess.run(
        [haproxy, "-c", "-q", "-f", str(ROOT / "deploy" / "haproxy" / "haproxy.cfg")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_redis_sizing_script_measures_a_constant_cost_per_request(
    bundle_v1: Path, redis_url: str, tmp_path: Path
) -> None:
    """deploy/redis_sizing.py (the README's sizing figures): two round trips per request, and
    the Redis commands of a request do not grow with its number of points."""
    import shutil

    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        from redis_sizing import measure
    finally:
        sys.path.remove(str(ROOT / "deploy"))
    models = tmp_path / "models"
    shutil.copytree(bundle_v1, models / "demo")
    one = measure(models, redis_url, streams=5, n_points=40, batch=1)
    ten = measure(models, redis_url, streams=5, n_points=40, batch=10)
    # one Lua commit per request; each stream is read once, then served from the process cache
    for m in (one, ten):
        assert 1 <= m["round_trips_per_request"] <= 1 + 5 / m["requests"] + 0.05
    assert ten["commands_per_request"] < 1.5 * one["commands_per_request"]
    assert 0 < ten["memory_per_stream"] < 100_000


def test_every_compose_variable_is_documented() -> None:
    readme = (ROOT / "deploy" / "README.md").read_text()
    for path in (ROOT / "docker-compose.yml", ROOT / "deploy" / "docker-compose.gpu.yml"):
        for name in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", path.read_text())):
            assert f"`{name}`" in readme, f"{name} ({path.name}) is not in deploy/README.md"
    for name in ("TAD_SEED_MODEL_DIR", "TAD_HEALTHCHECK_TIMEOUT"):  # read by deploy/docker/
        assert f"`{name}`" in readme, name
