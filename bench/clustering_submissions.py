"""What one large clustering submission costs the service, parsed here or in its own process.

    python bench/clustering_submissions.py        # ~3 minutes on 2 cores

Starts `tad serve --demo` twice on loopback (TAD_CLUSTERING_WORKERS=0: jobs are queued, not
trained, so only the submission is measured): once with every input parsed in the service
(TAD_CLUSTERING_PARSE_IN_PROCESS_BYTES above every body: the design before issue 25), once
with the default (over 256 KiB: counted, then parsed in a capped child process). For each of
issue 25's inputs it prints the answer, how long the submission took, the service's peak
memory growth during it (VmHWM, reset before each case) and the p99 of one-point POSTs sent
meanwhile from another process (from 0.3 s before the submission to its answer), next to the
idle p99 of the same service.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
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

from bench.ingest_with_clustering import free_port, wait_ready  # noqa: E402

JOBS = "/v1/clustering/jobs"


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux ≥ 4.0)


def cases() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(0)
    one_line = b"@data\n" + b"1.5," * 7_500_000 + b"1.5:0\n"  # 30 MB, 15 M values
    short = b"@data\n" + b"1,2:a\n" * 5_000_000  # 30 MB, 5 M series
    x = rng.integers(-9, 10, (2000, 2000, 1))  # one digit: the body is 15 MiB, as in the issue
    buf = io.BytesIO()
    np.savez(buf, X=rng.standard_normal((2000, 2000, 1)).astype(np.float32))
    return {
        ".ts, one line of 15 M values (30 MB)": {
            "files": {"file": ("big.ts", one_line)},
            "data": {"n_clusters": "2"},
        },
        ".ts, 5 M short lines (30 MB)": {
            "files": {"file": ("many.ts", short)},
            "data": {"n_clusters": "2"},
        },
        "JSON, N = 2000, T = 2000 (15 MiB)": {
            "content": orjson.dumps({"series": x.tolist(), "n_clusters": 4}),
            "headers": {"content-type": "application/json"},
        },
        ".npz, N = 2000, T = 2000 float32 (16 MB)": {
            "files": {"file": ("x.npz", buf.getvalue())},
            "data": {"n_clusters": "4"},
        },
    }


def one_point_latencies(base: str, stop: Any, start: float, out: Any) -> None:
    """In its own process (the submitting client's GIL must not delay it): one-point POSTs
    until `stop` is set; latencies in seconds onto the `out` queue."""
    lat, t = [], start
    client = httpx.Client(base_url=base, timeout=300)
    while not stop.is_set():
        t += 1.0
        body = orjson.dumps({"points": [{"timestamp": t, "values": [0.1, 0.2, 0.3, 0.4]}]})
        t0 = time.perf_counter()
        r = client.post(
            "/v1/streams/probe/points", content=body, headers={"content-type": "application/json"}
        )
        lat.append(time.perf_counter() - t0)
        r.raise_for_status()
    out.put(lat)


def run(where: str, env_extra: dict[str, str], probes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = os.environ | {
            "TAD_LOG_LEVEL": "warning",
            "TAD_CLUSTERING_WORKERS": "0",
            "TAD_CLUSTERING_MAX_QUEUE": "100",
            **env_extra,
        }
        tad = Path(sys.executable).with_name("tad")
        cmd = [str(tad), "serve", "--demo", "--model-dir", tmp, "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
                wait_ready(client)
                idle = one_point_latencies_n(client, probes, 1e6)
                p99_idle = np.percentile(idle, 99) * 1000
                print(f"| {where}: idle | | | | {p99_idle:.1f} |")
                for i, (name, kw) in enumerate(cases().items()):
                    reset_peak(proc.pid)
                    before = peak_mb(proc.pid)
                    stop = mp.Event()
                    queue: Any = mp.Queue()
                    base = f"http://127.0.0.1:{port}"
                    probe = mp.Process(
                        target=one_point_latencies, args=(base, stop, 1e8 * (i + 2), queue)
                    )
                    probe.start()
                    time.sleep(0.3)  # the probe is sending
                    t0 = time.perf_counter()
                    r = client.post(JOBS, **kw)
                    took = time.perf_counter() - t0
                    stop.set()
                    box = [queue.get(timeout=60)]
                    probe.join()
                    grow = peak_mb(proc.pid) - before
                    p99 = np.percentile(box[0], 99) * 1000 if box[0] else float("nan")
                    print(
                        f"| {where}: {name} | {r.status_code} | {took:.2f} | {grow:.0f} | "
                        f"{p99:.1f} ({len(box[0])} POSTs) |"
                    )
                    sys.stdout.flush()
        finally:
            proc.terminate()
            proc.wait(30)


def one_point_latencies_n(client: httpx.Client, n: int, start: float) -> list[float]:
    out: list[float] = []
    t = start
    for _ in range(n):
        t += 1.0
        body = orjson.dumps({"points": [{"timestamp": t, "values": [0.1, 0.2, 0.3, 0.4]}]})
        t0 = time.perf_counter()
        client.post(
            "/v1/streams/probe/points", content=body, headers={"content-type": "application/json"}
        ).raise_for_status()
        out.append(time.perf_counter() - t0)
    return out


def main(probes: Annotated[int, typer.Option(help="idle one-point POSTs")] = 500) -> None:
    print(
        "| service: input | status | submission s | service peak memory growth MB | "
        "one-point POST p99 ms |"
    )
    print("|---|---|---|---|---|")
    before = {"TAD_CLUSTERING_PARSE_IN_PROCESS_BYTES": str(1 << 30)}
    run("parsed in the service (before)", before, probes)
    run("own process (default)", {}, probes)


if __name__ == "__main__":
    typer.run(main)
