"""Keep the deployment files in step with service/settings.py.

    .venv/bin/python deploy/config_reference.py          # rewrite the generated blocks
    .venv/bin/python deploy/config_reference.py --check  # exit 1 if one is stale (tests do)

Every `TAD_*` variable the service reads is a field of `service.settings.Settings`. This script
writes, between `>>> generated` / `<<< generated` markers:
  - the configuration table of deploy/README.md (variable, default, allowed values, meaning);
  - the `service` environment of docker-compose.yml: `TAD_X: ${TAD_X:-default}` for each
    variable, so any of them can be set from the shell or `.env`;
  - the ConfigMap of deploy/k8s/ (every variable but the API keys, which live in a Secret).
Variables the deployment fixes (bind address, port, model and Redis location) are in FIXED.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Any, get_args, get_origin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.settings import ENV_PREFIX, Settings  # noqa: E402

README = ROOT / "deploy" / "README.md"
COMPOSE = ROOT / "docker-compose.yml"
CONFIGMAP = ROOT / "deploy" / "k8s" / "configmap.yaml"

# What the containers set, whatever the environment says (compose and Kubernetes alike), and the
# Redis URL each of them points at by default.
FIXED = {"host": "0.0.0.0", "port": "8000", "model_dir": "/models"}
COMPOSE_DEFAULTS = {"redis_url": "redis://redis:6379/0"}
# k8s values that differ from the service defaults: a pod's memory limit (deployment.yaml) must
# hold the stream cache and a clustering job's cap at once (deploy/README.md, "Pod memory")
K8S_VALUES = {
    "redis_url": "redis://redis:6379/0",
    "stream_cache_size": "20000",
    "clustering_max_memory_mb": "1536",
}
SECRET = {"api_keys", "mqtt_password"}  # never in a ConfigMap or a default

# Meanings for fields whose Field() has no description.
MEANING = {
    "model_dir": "directory of bundle directories; rescanned on SIGHUP or POST /v1/models/reload",
    "redis_url": "keep stream state in Redis (redis://, rediss://, unix://); unset: in memory",
    "redis_prefix": "prefix of every Redis key (deployments can share one Redis)",
    "store_timeout_s": "seconds before a Redis call counts as failed (503, not ready)",
    "commit_retries": "re-runs of a request whose streams another replica changed meanwhile",
    "api_keys": "comma-separated API keys (X-API-Key or Bearer), each SECRET or "
    "ROLE[@TENANT]:SECRET (see API keys); empty: no auth",
    "nonfinite_policy": "NaN/inf values: `reject` the point, or `hold` the channel's last value",
    "max_body_bytes": "largest HTTP request body (413 above)",
    "max_ws_message_bytes": "largest WebSocket message (close 1009 above)",
    "max_points_per_request": "most points in one request or message",
    "max_streams_per_request": "most streams in one request or message (one atomic commit)",
    "duplicate_window": "recent points per stream remembered, to answer resends as duplicates",
    "alarm_history": "alarm events kept per stream",
    "auto_create_streams": "create a stream on its first point (else 404 until POST /v1/streams)",
    "device": "ONNX Runtime device: `cpu`, `cuda` (gpu image) or `auto`",
    "onnx_threads": "ONNX Runtime intra-op threads per model",
    "scoring_threads": "threads running model calls",
    "host": "bind address",
    "port": "listen port",
    "log_level": "log level",
}
PREFIX_MEANING = {
    "clustering_": "EMTC clustering jobs (docs/clustering.md)",
    "episode_": "alarm episodes kept for fault-family clustering (docs/clustering.md)",
}


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def default_text(field: str) -> str:
    """The default as an environment value the service parses back to the same default."""
    info = Settings.model_fields[field]
    value: Any = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
    if value is None or value == []:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def allowed_text(field: str) -> str:
    info = Settings.model_fields[field]
    ann = info.annotation
    args = get_args(ann)
    if get_origin(ann) is not None and args and all(isinstance(a, str) for a in args):
        return " \\| ".join(f"`{a}`" for a in args)  # Literal[...]
    kind = {int: "integer", float: "number", bool: "true/false", str: "text"}.get(ann, "")  # type: ignore[arg-type]
    if field == "model_dir":
        kind = "directory"
    elif field == "api_keys":
        kind = "keys, comma-separated"
    elif not kind:
        kind = "text"
    bounds = []
    for m in info.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if hasattr(m, attr):
                bounds.append(f"{sym} {getattr(m, attr):,}".replace(",", " "))
        if hasattr(m, "min_length"):
            bounds.append(f"length ≥ {m.min_length}")
        if hasattr(m, "max_length"):
            bounds.append(f"length ≤ {m.max_length}")
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def meaning(field: str) -> str:
    if field in MEANING:
        return MEANING[field]
    desc = Settings.model_fields[field].description
    for prefix, text in PREFIX_MEANING.items():
        if field.startswith(prefix):
            return f"{text}: {desc}" if desc else text
    return desc or ""


def readme_block() -> list[str]:
    lines = [
        "| Variable | Default (service) | Compose / Kubernetes | Allowed | Meaning |",
        "|---|---|---|---|---|",
    ]
    for field in Settings.model_fields:
        default = default_text(field)
        shown = f"`{default}`" if default else "unset"
        deploy = (
            f"fixed `{FIXED[field]}`"
            if field in FIXED
            else f"`{COMPOSE_DEFAULTS[field]}`"
            if field in COMPOSE_DEFAULTS
            else "env; k8s Secret"
            if field in SECRET
            else "same"
        )
        lines.append(
            f"| `{env_name(field)}` | {shown} | {deploy} | {allowed_text(field)} | "
            f"{meaning(field)} |"
        )
    return lines


def compose_block(indent: str) -> list[str]:
    lines = []
    for field in Settings.model_fields:
        name = env_name(field)
        if field in FIXED:
            lines.append(f'{indent}{name}: "{FIXED[field]}"')
        else:
            default = COMPOSE_DEFAULTS.get(field, default_text(field))
            if "{" in default or "}" in default:  # `${X:-a/{b}}` ends at the first `}`:
                default = ""  # empty, which the service reads as its default (a template)
            lines.append(f"{indent}{name}: ${{{name}:-{default}}}")
    return lines


def configmap_block(indent: str) -> list[str]:
    lines = []
    for field in Settings.model_fields:
        if field in SECRET:
            continue
        value = FIXED.get(field, K8S_VALUES.get(field, default_text(field)))
        lines.append(f'{indent}{env_name(field)}: "{value}"')
    return lines


BEGIN = re.compile(r"^(?P<indent>\s*)(?P<lead>#|<!--) >>> generated by deploy/config_reference\.py")
END = re.compile(r"^\s*(#|<!--) <<< generated")


def rewrite(text: str, make: Any) -> str:
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    found = False
    while i < len(lines):
        out.append(lines[i])
        m = BEGIN.match(lines[i])
        if m:
            found = True
            j = i + 1
            while j < len(lines) and not END.match(lines[j]):
                j += 1
            if j == len(lines):
                raise SystemExit(f"unterminated generated block after line {i + 1}")
            out += make(m.group("indent"))
            out.append(lines[j])
            i = j
        i += 1
    if not found:
        raise SystemExit("no '>>> generated by deploy/config_reference.py' marker")
    return "\n".join(out) + "\n"


def targets() -> list[tuple[Path, Any]]:
    return [
        (README, lambda indent: readme_block()),
        (COMPOSE, compose_block),
        (CONFIGMAP, configmap_block),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    stale = []
    for path, make in targets():
        old = path.read_text()
        new = rewrite(old, make)
        if new == old:
            continue
        stale.append(path)
        if args.check:
            diff = difflib.unified_diff(
                old.splitlines(), new.splitlines(), str(path), "regenerated", lineterm="", n=0
            )
            print("\n".join(diff))
        else:
            path.write_text(new)
            print(f"updated {path.relative_to(ROOT)}")
    if args.check and stale:
        print(
            "\nstale: " + ", ".join(str(p.relative_to(ROOT)) for p in stale) + "\n"
            "service/settings.py changed: run `.venv/bin/python deploy/config_reference.py`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
