"""The container's security settings, reproduced without Docker: the service runs as the
compose `user` with no capabilities and no-new-privileges, on a read-only root filesystem
(`read_only: true`) with a tmpfs for temporary files and the models volume as the only writable
places — and it seeds, serves and scores there. Plus the entry point's seeding rules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.deploy.stack import (
    Localizer,
    dockerfile_stages,
    http_ok,
    image_paths,
    load_compose,
    require_binary,
    run_healthcheck,
    service_healthcheck,
    service_process,
    wait_up,
)
from tests.support.data import points, series
from tests.support.processes import ROOT, free_port

ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"

# In a private mount namespace: every mount but /proc, /sys and /dev read-only (a container's
# read-only root), a tmpfs for TMPDIR (compose `tmpfs: [/tmp]`), the models directory bound
# writable (the volume); then drop to the compose user with no capabilities and exec.
# SANDBOX_EXPOSE: a directory of this machine's Python that sits under a directory other users
# cannot enter (pyenv under /root): shown alone on a tmpfs there, only in this namespace, so the
# unprivileged user can run the interpreter as it can in the image (/usr/local, /opt/venv).
SANDBOX = r"""
set -eu
if [ -n "${SANDBOX_EXPOSE:-}" ]; then
  mount --bind "$SANDBOX_EXPOSE" "$SANDBOX_HOLD"
  mount -t tmpfs -o mode=0755,size=1m tmpfs "$(dirname "$SANDBOX_EXPOSE")"
  mkdir "$SANDBOX_EXPOSE"
  mount --bind "$SANDBOX_HOLD" "$SANDBOX_EXPOSE"
fi
for m in $(awk '{print $2}' /proc/self/mounts | sort -u); do
  case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -t tmpfs -o mode=1777,size=64m tmpfs "$SANDBOX_TMP"
mount --bind "$SANDBOX_MODELS" "$SANDBOX_MODELS"
mount -o remount,bind,rw "$SANDBOX_MODELS"
exec setpriv --reuid "$SANDBOX_UID" --regid "$SANDBOX_GID" --clear-groups --no-new-privs \
  --inh-caps=-all --bounding-set=-all -- "$@"
"""


def hidden_interpreter_dir() -> str:
    """The directory to expose (see SANDBOX), or '' when others can reach the interpreter."""
    path = Path(os.path.realpath(sys.executable))
    for parent in reversed(path.parents):
        if parent != Path("/") and not parent.stat().st_mode & 0o001:
            return str(parent / path.relative_to(parent).parts[0])
    return ""


@pytest.fixture
def sandbox_root() -> Iterator[Path]:
    """A directory the unprivileged user can reach (pytest's tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="tad-container-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _can_sandbox() -> str | None:
    """Why the sandbox cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (to make a mount namespace and drop to the container user)"
    for tool in ("unshare", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is missing"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
    )
    if probe.returncode != 0:
        return f"cannot create a mount namespace: {probe.stderr.decode().strip()}"
    return None


def test_service_runs_unprivileged_on_a_read_only_root(
    sandbox_root: Path, bundle_v1: Path, redis_url: str
) -> None:
    compose = load_compose({"GRAFANA_ADMIN_PASSWORD": "unused"})
    svc = compose["services"]["service"]
    uid, gid = (int(v) for v in str(svc["user"]).split(":"))
    assert svc["read_only"] is True and "/tmp" in svc["tmpfs"]
    assert svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"]
    reason = _can_sandbox()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the container sandbox cannot run in CI: {reason}")
        pytest.skip(reason)

    models, seed, tmp, hold = (sandbox_root / d for d in ("models", "seed", "tmp", "hold"))
    for d in (models, seed, tmp, hold):
        d.mkdir()
    os.chown(models, uid, gid)  # the image makes /models the user's; a new volume inherits it
    shutil.copytree(bundle_v1, seed / "demo")
    for p in [seed, *seed.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    redis = urlparse(redis_url)
    port = free_port()
    loc = Localizer(
        {
            **image_paths(dockerfile_stages()["runtime"]),
            "/models": models,
            "/opt/tad/seed-models": seed,
        },
        {"redis:6379": f"{redis.hostname}:{redis.port}"},
    )
    server = service_process(
        compose,
        sandbox_root,
        port,
        loc,
        sandbox_root / "service.log",
        extra_env={
            "TAD_REDIS_PREFIX": "sandbox:",
            "TMPDIR": str(tmp),
            "SANDBOX_TMP": str(tmp),
            "SANDBOX_MODELS": str(models),
            "SANDBOX_UID": str(uid),
            "SANDBOX_GID": str(gid),
            "SANDBOX_EXPOSE": hidden_interpreter_dir(),
            "SANDBOX_HOLD": str(hold),
            "HOME": "/nonexistent",  # the image's user has no home
        },
    )
    server.log_path.touch()
    server.argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        SANDBOX,
        "sandbox",
        *server.argv,
    ]
    server.start()
    try:
        wait_up(server, lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 60, "sandboxed service")
        assert run_healthcheck(service_healthcheck(compose), server.env) == 0
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/streams/ro/points", json={"points": points(series(40))}
        )
        assert r.status_code == 200 and r.json()["accepted"] == 40, r.text

        status = Path(f"/proc/{server.pid}/status").read_text()
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert fields["Uid"].split()[:2] == [str(uid), str(uid)]
        assert fields["Gid"].split()[:2] == [str(gid), str(gid)]
        assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
        assert fields["NoNewPrivs"].strip() == "1"
        assert "python" in Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
        mountinfo = Path(f"/proc/{server.pid}/mountinfo").read_text().splitlines()
        root = [m.split() for m in mountinfo if m.split()[4] == "/"]
        assert root and "ro" in root[-1][5].split(","), root
        writable = {m.split()[4] for m in mountinfo if "rw" in m.split()[5].split(",")}
        assert {str(tmp), str(models)} <= writable

        # seeded into the writable volume; nothing else was written there
        assert sorted(p.name for p in models.iterdir()) == ["demo"]
        assert all(p.stat().st_uid == uid for p in models.rglob("*"))
    finally:
        server.stop()
    assert not any(tmp.iterdir()), "the tmpfs went away with the namespace"


def run_entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *command],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_entrypoint_seeds_only_an_empty_model_dir(tmp_path: Path, bundle_v1: Path) -> None:
    seed, models = tmp_path / "seed", tmp_path / "models"
    shutil.copytree(bundle_v1, seed / "demo")
    env = {"TAD_MODEL_DIR": str(models), "TAD_SEED_MODEL_DIR": str(seed)}
    out = run_entrypoint(env, "sh", "-c", "echo ran $0 $1", "tad", "serve")
    assert out.returncode == 0 and out.stdout.strip() == "ran tad serve", out.stderr
    assert "seeded" in out.stderr
    assert sorted(p.name for p in models.iterdir()) == ["demo"]
    assert (models / "demo" / "manifest.json").read_bytes() == (
        seed / "demo" / "manifest.json"
    ).read_bytes()

    # a directory with a bundle (the user's, or the demo seeded before) is never touched
    shutil.rmtree(models / "demo")
    shutil.copytree(bundle_v1, models / "mine")
    out = run_entrypoint(env, "true")
    assert out.returncode == 0 and "seeded" not in out.stderr
    assert sorted(p.name for p in models.iterdir()) == ["mine"]


def test_entrypoint_seeding_races_between_replicas(tmp_path: Path, bundle_v1: Path) -> None:
    """Replicas starting together on one empty volume: one copy, no half bundle, no debris."""
    seed, models = tmp_path / "seed", tmp_path / "models"
    shutil.copytree(bundle_v1, seed / "demo")
    env = {"TAD_MODEL_DIR": str(models), "TAD_SEED_MODEL_DIR": str(seed)}
    procs = [
        subprocess.Popen(
            [str(ENTRYPOINT), "true"],
            env={"PATH": os.environ["PATH"], **env},
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    assert all(p.wait(timeout=30) == 0 for p in procs)
    assert sorted(p.name for p in models.iterdir()) == ["demo"], list(models.iterdir())
    assert sorted(p.name for p in (models / "demo").iterdir()) == sorted(
        p.name for p in (seed / "demo").iterdir()
    )


def test_entrypoint_on_a_read_only_empty_model_dir_still_starts(sandbox_root: Path) -> None:
    """A read-only, empty volume: a clear message, then the command (the service then reports
    not ready, having no model) rather than a crash loop."""
    seed, models = sandbox_root / "seed", sandbox_root / "models"
    (seed / "demo").mkdir(parents=True)
    (seed / "demo" / "manifest.json").write_text("{}")
    models.mkdir()
    models.chmod(0o555)
    env = {
        "PATH": os.environ["PATH"],
        "TAD_MODEL_DIR": str(models),
        "TAD_SEED_MODEL_DIR": str(seed),
    }
    cmd = [str(ENTRYPOINT), "echo", "started"]
    if os.geteuid() == 0:  # root may write anyway: run it as an unprivileged user
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        require_binary("setpriv")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "started", out.stderr
    assert "not writable" in out.stderr
    assert not any(models.iterdir())
