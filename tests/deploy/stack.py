"""The compose stack on loopback: what each container runs, run as plain processes.

Nothing here restates a command or a variable of the deployment: they are read from
docker-compose.yml and the Dockerfile, then *localized* — container paths become temporary
directories (bind mounts: the repository files themselves), service names become 127.0.0.1 and
fixed container ports become free ports. A config that needs more than that (Prometheus'
service discovery, HAProxy's DNS resolvers) is rewritten by a function below that changes only
the addresses. One file of ~400 lines: reading the compose file and localizing it are one
idea, used by test_stack, test_scale and test_container alike.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.processes import ROOT, ManagedProcess, wait_for

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent
NO_TORCH = Path(__file__).resolve().parent / "no_torch"


def require_binary(name: str) -> str:
    """The binary's path; missing is a failure in CI (env CI set), a skip elsewhere."""
    found = shutil.which(name)
    if found is None:
        msg = f"{name} is required (make system-deps)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return found


# ---------------------------------------------------------------------------------------------
# docker-compose.yml


class ComposeError(ValueError):
    pass


_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution: ${X}, ${X:-default}, ${X-default}, ${X:?err}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg")
        got = env.get(name)
        missing = (not got) if op and op.startswith(":") else got is None
        if op and op.endswith("-") and missing:
            return str(arg)
        if op and op.endswith("?") and missing:
            raise ComposeError(f"{name}: {arg}")
        return got or ""

    return _VAR.sub(sub, value)


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """docker-compose.yml with `env` substituted (anchors and merge keys resolved by YAML)."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    return dict(interpolate(raw, env))


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {
        k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in env.items()
    }


def healthcheck_argv(service: Mapping[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), test
    return list(test[1:]) if test[0] == "CMD" else ["sh", "-c", test[1]]


# ---------------------------------------------------------------------------------------------
# Dockerfile


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instr: str) -> list[str]:
        return [rest for i, rest in self.instructions if i == instr]

    def json(self, instr: str) -> list[str]:
        import json

        (last,) = self.all(instr)[-1:]
        if instr == "HEALTHCHECK":
            last = last[last.index("CMD") + 3 :]
        value = json.loads(last)
        assert isinstance(value, list)
        return [str(v) for v in value]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for rest in self.all("ENV"):
            for item in shlex.split(rest):
                k, _, v = item.partition("=")
                out[k] = v
        return out

    def copies(self) -> list[tuple[dict[str, str], str, str]]:
        """(flags, source, destination) of each COPY."""
        out = []
        for rest in self.all("COPY"):
            words = shlex.split(rest)
            flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
            src, dst = [w for w in words if not w.startswith("--")]
            out.append((flags, src, dst))
        return out

    def user(self) -> str:
        return self.all("USER")[-1]


def dockerfile_stages(text: str | None = None) -> dict[str, Stage]:
    text = DOCKERFILE.read_text() if text is None else text
    logical: list[str] = []
    buf = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#") or (not s and not buf):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        logical.append(buf + s)
        buf = ""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    global_args: dict[str, str] = {}  # ARGs before the first FROM: the defaults a FROM may use
    for entry in logical:
        instr, _, rest = entry.partition(" ")
        instr = instr.upper()
        if instr == "ARG" and current is None:
            name, _, default = rest.strip().partition("=")
            global_args[name] = default
        elif instr == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            assert m, entry
            base = re.sub(r"\$\{(\w+)\}", lambda a: global_args[a.group(1)], m.group(1))
            current = Stage(m.group(2) or m.group(1), base)
            stages[current.name] = current
        elif current is not None:
            current.instructions.append((instr, rest.strip()))
    return stages


# ---------------------------------------------------------------------------------------------
# localizing container paths and addresses


@dataclass
class Localizer:
    """Container path → host path, and service:port → 127.0.0.1:port."""

    paths: dict[str, Path] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)  # "redis:6379" → "127.0.0.1:N"

    def path(self, value: str) -> str:
        for prefix in sorted(self.paths, key=len, reverse=True):
            if value == prefix or value.startswith(prefix.rstrip("/") + "/"):
                return str(self.paths[prefix]) + value[len(prefix) :]
        return value

    def __call__(self, value: str) -> str:
        for address, local in self.addresses.items():
            value = value.replace(address, local)
        if "=" in value and value.startswith("--"):
            flag, _, arg = value.partition("=")
            return f"{flag}={self.path(arg)}"
        return self.path(value)

    def argv(self, args: Iterable[str]) -> list[str]:
        return [self(a) for a in args]


def image_paths(stage: Stage) -> dict[str, Path]:
    """Container paths of files the Dockerfile copies from the repository into `stage`."""
    out: dict[str, Path] = {}
    for flags, src, dst in stage.copies():
        if "from" not in flags:
            out[dst] = ROOT / src
    return out


def resolve_program(argv: list[str], paths: Mapping[str, Path]) -> list[str]:
    """The container finds bare names on its PATH: /usr/local/bin (copied scripts) or the venv."""
    if not argv or "/" in argv[0]:
        return argv
    for prefix in ("/usr/local/bin/", "/opt/venv/bin/"):
        if prefix + argv[0] in paths:
            return [str(paths[prefix + argv[0]]), *argv[1:]]
    if (VENV_BIN / argv[0]).exists():
        return [str(VENV_BIN / argv[0]), *argv[1:]]
    return argv


def mounts(service: Mapping[str, Any], tmp: Path) -> dict[str, Path]:
    """Container path → host path for a service's volumes: bind mounts are the repository
    files, named volumes fresh directories under `tmp`."""
    out: dict[str, Path] = {}
    for spec in service.get("volumes", []):
        src, dst = spec.split(":")[:2]
        if src.startswith((".", "/")):
            out[dst] = (ROOT / src).resolve()
        else:
            d = tmp / "volumes" / src
            d.mkdir(parents=True, exist_ok=True)
            out[dst] = d
    return out


# ---------------------------------------------------------------------------------------------
# processes


def http_ok(url: str, **kw: Any) -> bool:
    try:
        return httpx.get(url, timeout=2, **kw).status_code == 200
    except httpx.HTTPError:
        return False


def wait_up(proc: ManagedProcess, check: Callable[[], bool], timeout: float, what: str) -> None:
    def ready() -> bool:
        proc.check_alive()
        return check()

    wait_for(ready, timeout, what)


def run_healthcheck(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    """Run a compose health check command on the host: `wget` if there is one, else the same
    GET by httpx (the images' busybox wget is not everywhere)."""
    if argv[0] == "wget" and shutil.which("wget") is None:
        return 0 if http_ok(argv[-1]) else 1
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


# ---------------------------------------------------------------------------------------------
# the service container, as a process


def service_process(
    compose: Mapping[str, Any],
    tmp: Path,
    port: int,
    localizer: Localizer,
    log: Path,
    extra_env: Mapping[str, str] | None = None,
    no_torch: bool = True,
) -> ManagedProcess:
    """`service` as the container runs it: the runtime stage's ENTRYPOINT + compose command,
    the image ENV overlaid with the compose environment, localized. With `no_torch`, torch and
    the other training packages cannot be imported (the runtime image has none)."""
    stage = dockerfile_stages()["runtime"]
    svc = compose["services"]["service"]
    argv = stage.json("ENTRYPOINT") + list(svc.get("command") or stage.json("CMD"))
    env = {**stage.env(), **environment(svc)}
    env = {k: localizer(v) for k, v in env.items()}
    env["TAD_HOST"] = "127.0.0.1"
    env["TAD_PORT"] = str(port)
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAD_")}
    base["PATH"] = f"{VENV_BIN}{os.pathsep}{base.get('PATH', '')}"
    if no_torch:
        base["PYTHONPATH"] = os.pathsep.join(
            [str(NO_TORCH), str(ROOT), *filter(None, [base.get("PYTHONPATH")])]
        )
    paths = image_paths(stage)
    argv = resolve_program(localizer.argv(argv), paths)
    return ManagedProcess("service", argv, log, {**base, **env, **(extra_env or {})}, cwd=tmp)


def healthcheck_env(proc: ManagedProcess) -> dict[str, str]:
    assert proc.env is not None
    return proc.env


# ---------------------------------------------------------------------------------------------
# configs rewritten for loopback


def haproxy_config(backends: list[int], port: int) -> str:
    """deploy/haproxy/haproxy.cfg with Docker's DNS replaced by the loopback replicas: the
    `server-template` becomes one `server` per port, the resolvers go; nothing else changes."""
    text = (ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    out: list[str] = []
    in_resolvers = False
    for line in text.splitlines():
        s = line.strip()
        if line and not line[0].isspace():
            in_resolvers = s.startswith("resolvers ")
            if in_resolvers:
                continue
        if in_resolvers:
            continue
        if s.startswith("bind "):
            line = line.replace(s, f"bind 127.0.0.1:{port}")
        elif s.startswith("default-server"):
            line = re.sub(r"\s+(resolvers \S+|init-addr \S+|resolve-prefer \S+)", "", line)
        elif s.startswith("server-template"):
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}server tad{i + 1} 127.0.0.1:{p}" for i, p in enumerate(backends)]
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def prometheus_config(
    config: Mapping[str, Any], services: Mapping[str, list[str]], interval: str = "1s"
) -> dict[str, Any]:
    """A compose Prometheus config for loopback: DNS discovery of `name` becomes a static list
    of `services[name]`; `host:port` targets of compose services become their loopback
    addresses; intervals shortened. Rules, auth and everything else stay."""
    import copy

    cfg = copy.deepcopy(dict(config))
    cfg["global"] = {
        **cfg.get("global", {}),
        "scrape_interval": interval,
        "evaluation_interval": interval,
    }

    def targets(ts: list[str]) -> list[str]:
        return [t2 for t in ts for t2 in services.get(t, [t])]

    for job in cfg.get("scrape_configs", []):
        static = job.setdefault("static_configs", [])
        for sd in job.pop("dns_sd_configs", []):
            static.append({"targets": [t for n in sd["names"] for t in services[n]]})
        for sc in static:
            sc["targets"] = targets(sc["targets"])
    for am in cfg.get("alerting", {}).get("alertmanagers", []):
        for sc in am.get("static_configs", []):
            sc["targets"] = targets(sc["targets"])
    return cfg


def dashboard_queries(
    rate_interval: str = "5m", range_: str = "1h", stream: str = ".*"
) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the Grafana dashboard, variables filled in."""
    import json

    dash = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "tad.json").read_text())

    def fill(expr: str) -> str:
        return (
            expr.replace("$__rate_interval", rate_interval)
            .replace("$__range", range_)
            .replace("$stream", stream)
        )

    out = [(p["title"], fill(t["expr"])) for p in dash["panels"] for t in p.get("targets", [])]
    out += [(a["name"], fill(a["expr"])) for a in dash["annotations"]["list"] if "expr" in a]
    return out


def service_healthcheck(compose: Mapping[str, Any]) -> list[str]:
    """The compose health check of `service` as a host command (`python` is the venv's)."""
    paths = image_paths(dockerfile_stages()["runtime"])
    argv = Localizer(dict(paths)).argv(healthcheck_argv(compose["services"]["service"]))
    return [sys.executable if a == "python" else a for a in resolve_program(argv, paths)]
