"""`make image-check`: build the real images and prove them with real containers (issue 16).

    .venv/bin/python deploy/image_check.py [--keep-daemon] [--ca-bundle PATH] [--torch-wheel PATH]

1. A Docker engine: the one DOCKER_HOST (or the default socket) answers, else a private
   `dockerd` with its own data root (~/.cache/tad-image-check: layers are reused between runs)
   and socket, stopped at the end.
2. Bases: the Dockerfile's default python image where a registry answers, else one built from
   Debian's archive (deploy/docker/base_image.sh); so are stand-ins for the compose file's
   Redis, HAProxy, Prometheus and Alertmanager images. Torch for the trainer comes from its
   index, else from a local wheel (--torch-wheel, or the one in /opt/wheels) linked into
   deploy/docker/wheels/. The machine's CA bundle goes to pip as a build secret (for a
   TLS-intercepting proxy; never written to an image).
3. Builds the runtime and trainer targets of the Dockerfile users build, then checks with the
   containers: non-root, read-only root file system, the demo bundle seeded into an empty
   models volume, HEALTHCHECK healthy, /readyz, a demo stream with a fault raising an alarm;
   with a Redis container, a stream's state across `docker kill` + start of the service and of
   Redis; the trainer image training a bundle from a mounted CSV into the models volume, which
   the running service loads on POST /v1/models/reload.
4. `docker-compose up` of docker-compose.yml with deploy/compose.check.yml (the third-party
   images swapped, Grafana left out): ready through the proxy, and a demo fault sent through it
   reaches Alertmanager as TadAnomalyAlarm. Then the image sizes.

Exit status 0 only if every check passed; a missing tool is a failure naming it.

Why one file of ~550 lines: it runs as one script (`make image-check`) on a machine with a
container engine, with nothing of the repository installed but Python.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.demo import DEMO_CHANNELS, demo_series  # noqa: E402

PYTHON_BASE = "tad-python-base:bookworm"
REDIS_BASE = "tad-redis-base:bookworm"
TOOLS_BASE = "tad-stack-tools-base:bookworm"  # haproxy, prometheus, alertmanager, redis, wget
TOOLS_IMAGE, REDIS_LOCAL = "tad-stack-tools:check", "tad-redis-local:check"
SERVICE_IMAGE, TRAINER_IMAGE = "tad-service:check", "tad-trainer:check"
RUNTIME_SIZE_TARGET_MB = 400
CACHE = Path.home() / ".cache" / "tad-image-check"


class CheckFailed(RuntimeError):
    pass


def log(msg: str) -> None:
    typer.echo(f"image-check: {msg}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Docker:
    """The docker CLI against one engine; BuildKit's built-in frontend for builds."""

    def __init__(self, cli: str, host: str | None) -> None:
        self.cli = cli
        self.env = os.environ | {"DOCKER_BUILDKIT": "1"} | ({"DOCKER_HOST": host} if host else {})

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        out = subprocess.run(
            [self.cli, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and out.returncode != 0:
            raise CheckFailed(f"docker {' '.join(args[:3])} …: {out.stderr.strip()[-2000:]}")
        return out.stdout.strip()

    def answers(self) -> bool:
        try:
            return (
                subprocess.run(
                    [self.cli, "info"], env=self.env, capture_output=True, timeout=20
                ).returncode
                == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            return False


def docker_cli() -> str:
    """A CLI whose `docker build` runs BuildKit without the buildx plugin, or with it."""
    candidates = [os.environ.get("DOCKER", ""), "docker", "/usr/bin/docker"]
    for cli in filter(None, candidates):
        path = shutil.which(cli)
        if path is None:
            continue
        if subprocess.run([path, "buildx", "version"], capture_output=True).returncode == 0:
            return path
        version = subprocess.run(
            [path, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True
        ).stdout
        if version and int(version.split(".")[0]) < 23:  # built-in BuildKit client
            return path
    raise CheckFailed("no docker CLI able to build with BuildKit (install docker.io or buildx)")


@contextlib.contextmanager
def engine(keep: bool) -> Iterator[Docker]:
    cli = docker_cli()
    existing = Docker(cli, os.environ.get("DOCKER_HOST"))
    if existing.answers():
        log("using the running Docker engine")
        yield existing
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise CheckFailed("no Docker engine answers and dockerd is not installed (docker.io)")
    CACHE.mkdir(parents=True, exist_ok=True)
    sock = Path(tempfile.mkdtemp(prefix="tad-dockerd-")) / "docker.sock"
    proc = subprocess.Popen(
        [
            dockerd,
            "--data-root",
            str(CACHE / "root"),
            "--exec-root",
            str(sock.parent / "exec"),
            "--pidfile",
            str(sock.parent / "pid"),
            "-H",
            f"unix://{sock}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(sock.parent / "dockerd.log", "w"),  # noqa: SIM115
    )
    docker = Docker(cli, f"unix://{sock}")
    try:
        for _ in range(120):
            if docker.answers():
                break
            if proc.poll() is not None:
                raise CheckFailed(f"dockerd exited: see {sock.parent / 'dockerd.log'}")
            time.sleep(0.5)
        else:
            raise CheckFailed("dockerd did not answer within 60 s")
        log(f"started a private dockerd (data root {CACHE / 'root'})")
        yield docker
    finally:
        if not keep:
            proc.terminate()
            proc.wait(60)


def bases(docker: Docker) -> dict[str, str]:
    """Build arguments for the bases: the defaults where a registry answers, else local ones."""
    pulled = (
        subprocess.run(
            [docker.cli, "pull", "python:3.11.9-slim-bookworm"],
            env=docker.env,
            capture_output=True,
            timeout=120,
        ).returncode
        == 0
    )
    if pulled:
        log("image registry reachable: official bases")
        return {}
    log("no image registry: bases from Debian's archive (deploy/docker/base_image.sh)")
    script = str(ROOT / "deploy/docker/base_image.sh")
    env = docker.env | {"DOCKER": docker.cli}
    for image, packages in (
        (PYTHON_BASE, ["python3", "python3-venv", "ca-certificates"]),
        (REDIS_BASE, ["redis-server"]),
        (TOOLS_BASE, ["redis-server", "haproxy", "prometheus", "prometheus-alertmanager", "wget"]),
    ):
        if not docker("images", "-q", image):
            subprocess.run([script, image, *packages], env=env, check=True, timeout=600)
    return {"PYTHON_BASE": PYTHON_BASE}


def torch_source(wheel: Path | None) -> dict[str, str]:
    """TORCH_INDEX_URL: its default where the index answers, else a local wheel."""
    try:
        httpx.get("https://download.pytorch.org/whl/cpu/torch/", timeout=10).raise_for_status()
        return {}
    except httpx.HTTPError:
        pass
    if wheel is None:
        found = sorted(glob.glob("/opt/wheels/torch-2.13.0+cpu-*.whl"))
        if not found:
            raise CheckFailed("the torch index is unreachable: pass --torch-wheel PATH")
        wheel = Path(found[0])
    target = ROOT / "deploy/docker/wheels" / wheel.name
    if not target.exists():
        try:
            os.link(wheel, target)
        except OSError:
            shutil.copy2(wheel, target)
    log(f"torch from {wheel}")
    return {"TORCH_INDEX_URL": ""}


def build(docker: Docker, target: str, tag: str, args: dict[str, str], ca: Path | None) -> None:
    argv = ["build", "--network", "host", "--target", target, "-t", tag]
    for k, v in args.items():
        argv += ["--build-arg", f"{k}={v}"]
    if ca is not None:
        argv += ["--secret", f"id=pip_cert,src={ca}"]
    t0 = time.monotonic()
    docker(*argv, str(ROOT), timeout=3600)
    log(f"built {tag} (target {target}) in {time.monotonic() - t0:.0f} s")


def size_mb(docker: Docker, image: str) -> float:
    return int(docker("image", "inspect", "-f", "{{.Size}}", image)) / 1e6


class Containers:
    """Containers and volumes made by the check, removed at the end."""

    def __init__(self, docker: Docker) -> None:
        self.docker, self.names, self.volumes = docker, [], []  # type: ignore[var-annotated]

    def volume(self, name: str) -> str:
        self.docker("volume", "rm", "-f", name, check=False)
        self.docker("volume", "create", name)
        self.volumes.append(name)
        return name

    def service(self, name: str, port: int, models: str, **env: str) -> str:
        self.docker("rm", "-f", name, check=False)
        argv = [
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "host",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges:true",
            "-v",
            f"{models}:/models",
            "-e",
            f"TAD_PORT={port}",
            "-e",
            "TAD_HOST=127.0.0.1",
        ]
        for k, v in env.items():
            argv += ["-e", f"{k}={v}"]
        self.docker(*argv, SERVICE_IMAGE)
        self.names.append(name)
        return name

    def close(self) -> None:
        for name in self.names:
            self.docker("rm", "-f", name, check=False)
        for vol in self.volumes:
            self.docker("volume", "rm", "-f", vol, check=False)


def wait_healthy(docker: Docker, name: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "-f", "{{json .State}}", name))
        if state.get("Health", {}).get("Status") == "healthy":
            return
        if not state.get("Running"):
            logs = docker("logs", "--tail", "30", name, check=False)
            raise CheckFailed(f"{name} stopped: {logs}")
        time.sleep(1)
    raise CheckFailed(f"{name} not healthy within {timeout_s:.0f} s")


def post_points(http: str, stream: str, values: np.ndarray, start: int = 0) -> list[Any]:
    events: list[Any] = []
    with httpx.Client(base_url=http, timeout=30) as client:
        for lo in range(0, len(values), 50):
            rows = values[lo : lo + 50]
            body = {
                "points": [
                    {"seq": start + lo + i, "values": r.tolist()} for i, r in enumerate(rows)
                ]
            }
            resp = client.post(f"/v1/streams/{stream}/points", json=body)
            if resp.status_code != 200:
                raise CheckFailed(f"POST {stream}: {resp.status_code} {resp.text[:300]}")
            events += resp.json()["events"]
    return events


def check(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(what)
    log(f"ok: {what}")


def run_checks(docker: Docker, box: Containers, tmp: Path) -> None:
    models = box.volume("tad-check-models")
    port = free_port()
    svc = box.service("tad-check-service", port, models)
    http = f"http://127.0.0.1:{port}"
    check(docker("inspect", "-f", "{{.Config.User}}", svc) == "10001:10001", "runs as uid 10001")
    wait_healthy(docker, svc)
    check(True, "HEALTHCHECK healthy")
    check(docker("exec", svc, "id", "-u") == "10001", "the process is not root")
    denied = (
        subprocess.run(
            [docker.cli, "exec", svc, "touch", "/opt/tad/x"], env=docker.env, capture_output=True
        ).returncode
        != 0
    )
    check(denied, "root file system is read-only")
    seeded = docker("exec", svc, "sh", "-c", "ls /models")
    check("demo" in seeded, f"demo bundle seeded into the empty models volume ({seeded!r})")
    check(httpx.get(f"{http}/readyz", timeout=10).status_code == 200, "/readyz answers 200")
    fault = demo_series(400, seed=5, anomaly=(250, 290))
    events = post_points(http, "check-1", fault)
    check(any(e["kind"] == "opened" for e in events), "a demo stream with a fault raises an alarm")

    # Redis: state across docker kill + start
    redis_port = free_port()
    data = box.volume("tad-check-redis")
    box.docker("rm", "-f", "tad-check-redis", check=False)
    box.docker(
        "run",
        "-d",
        "--name",
        "tad-check-redis",
        "--network",
        "host",
        "-v",
        f"{data}:/data",
        REDIS_BASE,
        "redis-server",
        "--port",
        str(redis_port),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        "/data",
    )
    box.names.append("tad-check-redis")
    port2 = free_port()
    svc2 = box.service(
        "tad-check-redis-service", port2, models, TAD_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0"
    )
    wait_healthy(docker, svc2)
    http2 = f"http://127.0.0.1:{port2}"
    post_points(http2, "kept", demo_series(120, seed=6))
    docker("kill", svc2)
    docker("start", svc2)
    wait_healthy(docker, svc2)
    count = httpx.get(f"{http2}/v1/streams/kept", timeout=10).json().get("count")
    check(count == 120, f"Redis kept the stream across docker kill + start (count {count})")
    docker("kill", "tad-check-redis")
    docker("start", "tad-check-redis")
    time.sleep(1)
    count = httpx.get(f"{http2}/v1/streams/kept", timeout=10).json().get("count")
    check(count == 120, f"… and across a kill of the Redis container (count {count})")

    # trainer: a bundle from a mounted CSV, loaded by the running service
    csv_dir = tmp / "data"
    csv_dir.mkdir()
    train = demo_series(1500, seed=7)
    header = ",".join(["timestamp", *DEMO_CHANNELS])
    rows = np.column_stack([np.arange(len(train)), train])
    np.savetxt(csv_dir / "plant.csv", rows, delimiter=",", header=header, comments="", fmt="%.6g")
    os.chmod(csv_dir, 0o755)
    os.chmod(csv_dir / "plant.csv", 0o644)
    t0 = time.monotonic()
    out = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "-e",
        "HOME=/tmp",
        "-e",
        "MPLCONFIGDIR=/tmp/matplotlib",
        "-v",
        f"{models}:/models",
        "-v",
        f"{csv_dir}:/data:ro",
        TRAINER_IMAGE,
        "--data",
        "/data/plant.csv",
        "--kind",
        "table",
        "--epochs",
        "3",
        timeout=1800,
    )
    check("is ready" in out, f"trainer image trained a bundle in {time.monotonic() - t0:.0f} s")
    reload = httpx.post(f"{http}/v1/models/reload", timeout=60).json()
    names = [m["name"] for m in httpx.get(f"{http}/v1/models", timeout=10).json()["models"]]
    check("plant" in names, f"the running service loaded it on reload ({reload.get('changed')})")


def third_party_images(docker: Docker) -> None:
    """compose.check.yml's stand-ins for the registry images, from Debian's packages: redis
    with a /data its user owns (as the official image has), the rest from one tools image."""
    for tag, lines in (
        (TOOLS_IMAGE, [f"FROM {TOOLS_BASE}"]),
        (REDIS_LOCAL, [f"FROM {TOOLS_BASE}", "RUN install -d -o redis -g redis /data"]),
    ):
        subprocess.run(
            [docker.cli, "build", "-t", tag, "-"],
            input="\n".join(lines) + "\n",
            env=docker.env,
            text=True,
            capture_output=True,
            check=True,
            timeout=300,
        )


def compose_check(docker: Docker) -> None:
    """`docker-compose up` of docker-compose.yml (third-party images swapped by
    deploy/compose.check.yml): a demo fault sent through the proxy reaches Alertmanager."""
    compose = shutil.which("docker-compose")
    if compose is None:
        raise CheckFailed("docker-compose is not installed (apt-get install docker-compose)")
    third_party_images(docker)
    ports = {
        k: str(free_port())
        for k in ("TAD_HTTP_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "GRAFANA_PORT")
    }
    env = (
        docker.env
        | ports
        | {
            "TAD_IMAGE": SERVICE_IMAGE,
            "TAD_TRAINER_IMAGE": TRAINER_IMAGE,
            "GRAFANA_ADMIN_PASSWORD": "image-check",
            "COMPOSE_PROJECT_NAME": "tadcheck",
        }
    )
    files = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "deploy/compose.check.yml")]

    def run(*args: str, timeout: float = 600) -> None:
        out = subprocess.run(
            [compose, *files, *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if out.returncode != 0:
            raise CheckFailed(f"docker-compose {' '.join(args)}: {out.stderr.strip()[-2000:]}")

    t0 = time.monotonic()
    try:
        run("up", "-d", "--no-build")
        http = f"http://127.0.0.1:{ports['TAD_HTTP_PORT']}"
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{http}/readyz", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise CheckFailed("the stack did not answer /readyz through the proxy in 180 s")
            time.sleep(2)
        check(True, f"docker-compose up: ready through the proxy in {time.monotonic() - t0:.0f} s")
        events = post_points(http, "compose-1", demo_series(400, seed=5, anomaly=(250, 290))[:285])
        check(any(e["kind"] == "opened" for e in events), "the demo fault opens an alarm")
        am = f"http://127.0.0.1:{ports['ALERTMANAGER_PORT']}/api/v2/alerts"
        deadline = time.monotonic() + 180
        t1 = time.monotonic()
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                alerts = httpx.get(am, timeout=5).json()
                if any(
                    a["labels"].get("alertname") == "TadAnomalyAlarm"
                    and a["labels"].get("stream") == "compose-1"
                    for a in alerts
                ):
                    break
            if time.monotonic() > deadline:
                raise CheckFailed("TadAnomalyAlarm did not reach Alertmanager within 180 s")
            time.sleep(3)
        check(True, f"TadAnomalyAlarm reached Alertmanager {time.monotonic() - t1:.0f} s later")
    finally:
        run("down", "-v", "--remove-orphans", timeout=300)


def main(
    keep_daemon: Annotated[bool, typer.Option(help="leave a private dockerd running")] = False,
    ca_bundle: Annotated[
        Path | None, typer.Option(help="CA bundle for pip in builds (default: the system's)")
    ] = None,
    torch_wheel: Annotated[
        Path | None, typer.Option(help="CPU torch wheel where its index is unreachable")
    ] = None,
) -> None:
    ca = ca_bundle or Path("/etc/ssl/certs/ca-certificates.crt")
    try:
        with engine(keep_daemon) as docker:
            args = bases(docker) | torch_source(torch_wheel)
            build(docker, "runtime", SERVICE_IMAGE, args, ca if ca.exists() else None)
            build(docker, "trainer", TRAINER_IMAGE, args, ca if ca.exists() else None)
            box = Containers(docker)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    run_checks(docker, box, Path(tmp))
            finally:
                box.close()
            compose_check(docker)
            runtime_mb = size_mb(docker, SERVICE_IMAGE)
            verdict = "met" if runtime_mb <= RUNTIME_SIZE_TARGET_MB else "missed"
            sizes = [
                f"{SERVICE_IMAGE} {runtime_mb:.0f} MB (≤ {RUNTIME_SIZE_TARGET_MB}: {verdict})",
                f"{TRAINER_IMAGE} {size_mb(docker, TRAINER_IMAGE):.0f} MB",
            ]
            if "PYTHON_BASE" in args:
                sizes.append(f"base {PYTHON_BASE} {size_mb(docker, PYTHON_BASE):.0f} MB")
            log("image sizes: " + ", ".join(sizes))
    except (CheckFailed, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        typer.echo(f"image-check: FAILED: {exc}", err=True)
        raise typer.Exit(1) from None
    log("all checks passed")


if __name__ == "__main__":
    typer.run(main)
