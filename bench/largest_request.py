"""/healthz while the largest accepted multi-stream POST runs, on Redis (issue 25).

    python bench/largest_request.py          # ~1 minute on 2 cores

Starts a private redis-server and `tad serve --demo` on it (defaults: at most
TAD_MAX_STREAMS_PER_REQUEST = 1,000 streams and 100,000 points a request, 8 MiB a body), then
sends, one after the other, the largest requests the limits accept — 1,000 new streams × 1
point, 1,000 streams × 100 points (5.6 MB of JSON), one stream's 100,000 points — while
a second client GETs /healthz in a loop. Prints each request's status and time, and the
/healthz latencies (p50, p99, max) during it next to an idle figure. Before issue 25 an
80,000-stream request was accepted: one Redis script ran 6.5 s, /healthz waited 12.1 s and the
client got a 503 for committed work; that request is now refused with 413 (its row shows it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
import orjson
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_with_clustering import free_port, wait_ready  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402


def body(n_streams: int, n_points: int, t0: float, tag: str) -> bytes:
    rng = np.random.default_rng(0)
    values = rng.normal(0, 0.1, (n_points, 4)).round(4).tolist()
    return orjson.dumps(
        {
            "streams": [
                {
                    "stream_id": f"{tag}-{i}",
                    "points": [{"timestamp": t0 + j, "values": values[j]} for j in range(n_points)],
                }
                for i in range(n_streams)
            ]
        }
    )


def health_during(client: httpx.Client, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        client.get("/healthz").raise_for_status()
        out.append(time.perf_counter() - t0)


def summary(lat: list[float]) -> str:
    ms = np.asarray(lat) * 1000
    if not len(ms):
        return "– | – | –"
    return f"{np.percentile(ms, 50):.1f} | {np.percentile(ms, 99):.1f} | {ms.max():.1f}"


def main(idle: Annotated[int, typer.Option(help="idle /healthz GETs")] = 300) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis", persistent=False).start()
        port = free_port()
        env = os.environ | {
            "TAD_LOG_LEVEL": "warning",
            "TAD_REDIS_URL": redis.url,
        }
        tad = Path(sys.executable).with_name("tad")
        cmd = [str(tad), "serve", "--demo", "--model-dir", tmp, "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            with (
                httpx.Client(base_url=base, timeout=120) as api,
                httpx.Client(base_url=base, timeout=120) as probe,
            ):
                wait_ready(probe)
                quiet: list[float] = []
                for _ in range(idle):
                    t0 = time.perf_counter()
                    probe.get("/healthz")
                    quiet.append(time.perf_counter() - t0)
                print("| request | status | request s | /healthz p50 ms | p99 ms | max ms |")
                print("|---|---|---|---|---|---|")
                print(f"| idle | | | {summary(quiet)} |")
                cases = [
                    ("1,000 new streams × 1 point", 1000, 1, 0.0, "a"),
                    ("the same 1,000 streams × 1 point, next time", 1000, 1, 1.0, "a"),
                    ("1,000 streams × 100 points", 1000, 100, 2.0, "a"),
                    ("80,000 streams × 1 point (over the stream cap)", 80_000, 1, 0.0, "b"),
                    ("1 stream × 100,000 points (its own route)", 1, 100_000, 0.0, "c"),
                ]
                for label, n, k, t_start, tag in cases:
                    payload = body(n, k, t_start, tag)
                    path = "/v1/points"
                    if n == 1:  # one stream's body: {"points": [...]} on its own route
                        one = orjson.loads(payload)["streams"][0]["points"]
                        payload = orjson.dumps({"points": one})
                        path = f"/v1/streams/{tag}-0/points"
                    stop, lat = threading.Event(), []
                    th = threading.Thread(target=health_during, args=(probe, stop, lat))
                    th.start()
                    t0 = time.perf_counter()
                    r = api.post(
                        path, content=payload, headers={"content-type": "application/json"}
                    )
                    took = time.perf_counter() - t0
                    stop.set()
                    th.join()
                    print(f"| {label} | {r.status_code} | {took:.2f} | {summary(lat)} |")
                    sys.stdout.flush()
        finally:
            proc.terminate()
            proc.wait(30)
            redis.stop()


if __name__ == "__main__":
    typer.run(main)
