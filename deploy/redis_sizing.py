"""Measure what one stream costs Redis, with your bundle: the figures of deploy/README.md.

    .venv/bin/python deploy/redis_sizing.py --model-dir models --redis-url redis://127.0.0.1:6379/15

Runs the service in-process against the given Redis (use a scratch database: the keys are
written under a fresh prefix and deleted afterwards) and sends `--points` points to each of
`--streams` streams in requests of `--batch` points. Prints, from Redis' own counters:
commands per request, Redis CPU time per request (INFO commandstats), memory per stream
(used_memory growth and MEMORY USAGE of one stream's keys), AOF bytes per point if AOF is on,
and the request and point rates one Redis core can take at that batch size.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_seconds(r: Any) -> float:
    """CPU time of Redis' main thread (commands, scripts and client I/O)."""
    cpu = r.info("cpu")
    if "used_cpu_user_main_thread" in cpu:
        return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def workload(model: dict[str, Any], n_points: int) -> np.ndarray:
    """The demo bundle gets its own kind of nominal data (few alarms); any other bundle random
    data, which alarms often (a worst case for alarm and episode keys)."""
    from service.demo import DEMO_CHANNELS, demo_series

    if tuple(model["channels"]) == DEMO_CHANNELS:
        return demo_series(n_points, seed=3, start=4000)
    return np.random.default_rng(0).standard_normal((n_points, len(model["channels"])))


def commandstats(r: Any) -> dict[str, tuple[int, float]]:
    return {k: (int(v["calls"]), float(v["usec"])) for k, v in r.info("commandstats").items()}


def delta(
    after: dict[str, tuple[int, float]], before: dict[str, tuple[int, float]]
) -> dict[str, tuple[int, float]]:
    out = {}
    for k, (calls, usec) in after.items():
        c0, u0 = before.get(k, (0, 0.0))
        if calls - c0 > 0 and not k.startswith(("cmdstat_info", "cmdstat_memory", "cmdstat_scan")):
            out[k.removeprefix("cmdstat_")] = (calls - c0, usec - u0)
    return out


def measure(
    model_dir: Path, redis_url: str, streams: int, n_points: int, batch: int
) -> dict[str, Any]:
    import redis
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import load_settings

    prefix = f"sizing{uuid.uuid4().hex[:8]}:"
    r = redis.Redis.from_url(redis_url)
    settings = load_settings(model_dir=model_dir, redis_url=redis_url, redis_prefix=prefix)
    try:
        with TestClient(create_app(settings)) as client:
            (model,) = client.get("/v1/models").json()["models"][:1]
            channels = len(model["channels"])
            values = workload(model, n_points)
            mem0 = int(r.info("memory")["used_memory"])
            aof0 = int(r.info("persistence").get("aof_current_size", 0))
            stats0 = commandstats(r)
            cpu0 = cpu_seconds(r)
            requests = 0
            for lo in range(0, n_points, batch):
                for s in range(streams):
                    pts = [
                        {"seq": lo + i, "values": row}
                        for i, row in enumerate(values[lo : lo + batch].tolist())
                    ]
                    reply = client.post(f"/v1/streams/s{s}/points", json={"points": pts})
                    if reply.status_code != 200:
                        raise SystemExit(f"the service refused a request: {reply.text}")
                    requests += 1
            cpu1 = cpu_seconds(r)
            used = delta(commandstats(r), stats0)
            mem1 = int(r.info("memory")["used_memory"])
            aof1 = int(r.info("persistence").get("aof_current_size", 0))
            sample = {
                k.decode(): int(r.memory_usage(k) or 0) for k in r.scan_iter(f"{prefix}*{{s0}}*")
            }
    finally:
        keys = list(r.scan_iter(f"{prefix}*"))
        if keys:
            r.delete(*keys)
    calls = sum(c for c, _ in used.values())
    top_level = sum(c for k, (c, _) in used.items() if k in ("hmget", "evalsha", "eval"))
    return {
        "channels": channels,
        "requests": requests,
        "points": requests * batch,
        "commands": used,
        "commands_per_request": calls / requests,
        "round_trips_per_request": top_level / requests,
        "redis_usec_per_request": (cpu1 - cpu0) * 1e6 / requests,
        "memory_per_stream": (mem1 - mem0) / streams,
        "sample_keys": sample,
        "aof_bytes_per_point": (aof1 - aof0) / (requests * batch) if aof1 else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, required=True, help="a directory with one bundle")
    p.add_argument("--redis-url", required=True, help="a scratch Redis (keys are removed after)")
    p.add_argument("--streams", type=int, default=200)
    p.add_argument("--points", type=int, default=200, help="points per stream")
    p.add_argument("--batch", type=int, default=10, help="points per request")
    a = p.parse_args(argv)
    m = measure(a.model_dir, a.redis_url, a.streams, a.points, a.batch)
    per_req = m["redis_usec_per_request"]
    print(f"bundle: {m['channels']} channels; {m['requests']} requests of {a.batch} points")
    print(
        f"Redis commands per request: {m['commands_per_request']:.1f} "
        f"({m['round_trips_per_request']:.1f} round trips); per point: "
        f"{m['commands_per_request'] / a.batch:.2f}"
    )
    print(
        "  "
        + ", ".join(f"{k} {c / m['requests']:.2f}" for k, (c, _) in sorted(m["commands"].items()))
    )
    print(
        f"Redis CPU per request: {per_req:.1f} µs -> one Redis core: ~{1e6 / per_req:,.0f} "
        f"requests/s = ~{1e6 / per_req * a.batch:,.0f} points/s at {a.batch} points/request"
    )
    print(
        f"memory per stream: {m['memory_per_stream']:,.0f} bytes (used_memory growth); "
        f"keys of one stream: "
        + ", ".join(f"{k} {v} B" for k, v in sorted(m["sample_keys"].items()))
    )
    if m["aof_bytes_per_point"] is not None:
        print(f"AOF growth per point: {m['aof_bytes_per_point']:,.0f} bytes (before rewrite)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
