"""Ingest latency with and without a large clustering job running, in one run.

    python bench/ingest_with_clustering.py          # ~2 minutes on 2 cores

Starts `tad serve --demo` on loopback, then POSTs 10-point batches to 50 streams one after
the other, first with nothing else running, then while an EMTC job (N = 400, T = 512, D = 4,
default options: ~1.8 GB estimated) trains in its own process. Prints p50, p99 and max
request latency side by side, and the resident memory of the service and of the job process.
The job process runs at a lower priority (nice 10); on a host with spare cores it takes one
of them, so the "same core" row (server and job both pinned to core 0) is the worst case.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import orjson
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.demo import demo_series  # noqa: E402

STREAMS, PER_REQUEST = 50, 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(client: httpx.Client, timeout_s: float = 120.0) -> None:
    """Poll /readyz until the service answers 200 (it is starting up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the service was not ready within {timeout_s:g} s")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def job_pids(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = next(x for x in status.splitlines() if x.startswith("PPid:")).split()[1]
            if int(ppid) == parent and b"service.clustering.process" in cmd:
                pids.append(int(entry.name))
    return pids


def latencies(client: httpx.Client, requests: int, start: int) -> list[float]:
    """Seconds per POST of PER_REQUEST points to one of STREAMS streams, in turn."""
    x = demo_series(requests * PER_REQUEST // STREAMS + PER_REQUEST, seed=3, start=start)
    out = []
    for r in range(requests):
        s, row = r % STREAMS, (r // STREAMS) * PER_REQUEST
        pts = [
            {"timestamp": float(start + row + i), "values": x[row + i].tolist()}
            for i in range(PER_REQUEST)
        ]
        body = orjson.dumps({"points": pts})
        t0 = time.perf_counter()
        resp = client.post(
            f"/v1/streams/ingest-{s}/points",
            content=body,
            headers={"content-type": "application/json"},
        )
        out.append(time.perf_counter() - t0)
        resp.raise_for_status()
    return out


def row(case: str, lat: list[float], extra: str) -> str:
    ms = np.asarray(lat) * 1000
    p50, p99, worst = np.percentile(ms, 50), np.percentile(ms, 99), ms.max()
    return f"| {case} | {len(lat)} | {p50:.1f} | {p99:.1f} | {worst:.1f} | {extra} |"


def main(
    requests: Annotated[int, typer.Option(help="timed requests per case")] = 3000,
    same_core: Annotated[bool, typer.Option(help="also pin server and job to one core")] = True,
) -> None:
    rng = np.random.default_rng(0)
    job = {
        "series": rng.standard_normal((400, 512, 4)).round(3).tolist(),
        "n_clusters": 4,
        "method": "emtc",
        "options": {"epochs": 200, "stop_patience": 0},  # trains throughout the measurement
    }
    print("| case | requests | p50 ms | p99 ms | max ms | memory |")
    print("|---|---|---|---|---|---|")
    pinnings = [False, True] if same_core else [False]
    for pinned in pinnings:
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            env = os.environ | {"TAD_LOG_LEVEL": "warning", "TAD_MAX_BODY_BYTES": str(64 << 20)}
            tad = Path(sys.executable).with_name("tad")
            cmd = [str(tad), "serve", "--demo", "--model-dir", tmp, "--port", str(port)]
            pre = (lambda: os.sched_setaffinity(0, {0})) if pinned else None
            proc = subprocess.Popen(cmd, env=env, preexec_fn=pre)
            try:
                run_case(proc, port, job, requests, "one core shared" if pinned else "free")
            finally:
                proc.terminate()
                proc.wait(30)


def run_case(
    proc: subprocess.Popen[bytes], port: int, job: dict[str, Any], requests: int, where: str
) -> None:
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=60) as client:
        for _ in range(600):
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        latencies(client, STREAMS * 4, 0)  # untimed: streams created, windows warm
        quiet = latencies(client, requests, 10_000)
        print(row(f"no clustering job ({where})", quiet, f"service {rss_mb(proc.pid):.0f} MB"))
        r = client.post("/v1/clustering/jobs", json=job)
        r.raise_for_status()
        loc = r.headers["location"]
        while client.get(loc).json()["progress"] is None:  # trained an epoch: fully running
            time.sleep(0.2)
        busy = latencies(client, requests, 100_000)
        state = client.get(loc).json()
        mem = f"service {rss_mb(proc.pid):.0f} MB, job " + ", ".join(
            f"{rss_mb(p):.0f} MB" for p in job_pids(proc.pid)
        )
        print(row(f"EMTC job training ({where})", busy, mem))
        assert state["status"] == "running", state
        client.delete(loc)
        sys.stdout.flush()


if __name__ == "__main__":
    typer.run(main)
