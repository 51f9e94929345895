"""Performance side by side (issue 6), on loopback, load generator in a separate process.

    python bench/perf.py                 # ~3 minutes on 2 cores
    python bench/perf.py --quick         # fewer connection counts, shorter runs

Prints one markdown table: model points/s per core (full window vs incremental step, batch
1/64/1024), end-to-end batch POST and WebSocket points/s with p50/p99 latency, River's
HalfSpaceTrees on the same points, and resident memory per 1,000 idle streams. The model is
SMD-sized (C = 38, d = 128, df = 5), trained for one epoch on generated data: speed does not
depend on the weights.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
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

from detector.bundle import load_bundle  # noqa: E402
from detector.runtime import OnnxReconstructor, OnnxStepModel  # noqa: E402

C, L = 38, 24
WARMUP_MESSAGES = 25  # per connection, untimed: stream creation and the window's warm-up
Row = tuple[str, str, str, str]


_GEN = np.random.default_rng(0)
PERIODS, PHASES = _GEN.uniform(5, 50, C), _GEN.uniform(0, 6, C)


def nominal(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[n, C] readings like the training data: what a healthy plant sends."""
    return np.sin(t[:, None] / PERIODS + PHASES) + 0.05 * rng.normal(size=(len(t), C))


def nominal_points(rng: np.random.Generator, start: int, n: int) -> list[dict[str, Any]]:
    t = np.arange(start, start + n)
    return [
        {"timestamp": float(ts), "values": v.tolist()}
        for ts, v in zip(t, nominal(t, rng), strict=True)
    ]


def smd_sized_bundle(out: Path) -> Path:
    from model_training.train import TrainConfig, train_and_export

    data = nominal(np.arange(3000), np.random.default_rng(0))
    cfg = TrainConfig(epochs=1, progress=False)
    return train_and_export(data, [f"ch{i:02d}" for i in range(C)], out / "smd", cfg, "smd", "1")


def rate(fn: Any, points_per_call: int, min_seconds: float = 1.0) -> float:
    fn()
    calls, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < min_seconds:
        fn()
        calls += 1
    return calls * points_per_call / elapsed


def model_rows(bundle_dir: Path, seconds: float) -> list[Row]:
    b = load_bundle(bundle_dir)
    full = OnnxReconstructor.from_bundle(b, "cpu", threads=1)
    step = OnnxStepModel.from_bundle(b, "cpu", threads=1)
    rng = np.random.default_rng(1)
    rows = []
    for batch in (1, 64, 1024):
        w = rng.uniform(-1, 1, (batch, L, C)).astype(np.float32)
        p = w[:, -1]
        cache = rng.normal(size=(batch, L - 1, step.embedding_dim)).astype(np.float32)
        f = rate(lambda w=w: full.reconstruct(w), batch, seconds)
        s = rate(lambda p=p, cache=cache: step.step(p, cache), batch, seconds)
        rows.append((f"model, batch {batch}", f"{f:,.0f} / {s:,.0f}", "", "full / step"))
    return rows


def river_row(points: np.ndarray) -> Row:
    from river.anomaly import HalfSpaceTrees

    model = HalfSpaceTrees(seed=0)
    rows = [{f"ch{i:02d}": float(v) for i, v in enumerate(x)} for x in (points + 1) / 2]
    t0 = time.perf_counter()
    for x in rows:
        model.score_one(x)
        model.learn_one(x)
    pps = len(rows) / (time.perf_counter() - t0)
    return ("River HalfSpaceTrees (learn_one + score_one)", f"{pps:,.0f}", "", "baseline")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post_load(port: int, streams: int, per_stream: int, requests: int, out: Any) -> None:
    """Batch POST /v1/points: each request carries `per_stream` points of `streams` streams."""
    rng = np.random.default_rng(2)
    bodies = [
        orjson.dumps(
            {
                "streams": [
                    {
                        "stream_id": f"post-{s}",
                        "model": "smd",
                        "points": nominal_points(rng, r * per_stream, per_stream),
                    }
                    for s in range(streams)
                ]
            }
        )
        for r in range(requests)
    ]
    lat = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        t0 = time.perf_counter()
        for body in bodies:
            t1 = time.perf_counter()
            resp = client.post(
                "/v1/points", content=body, headers={"content-type": "application/json"}
            )
            lat.append(time.perf_counter() - t1)
            resp.raise_for_status()
        elapsed = time.perf_counter() - t0
    out.put((streams * per_stream * requests / elapsed, lat))


async def _ws_client(
    url: str, msgs: int, per_msg: int, lat: list[float], start: asyncio.Event, ready: list[int]
) -> None:
    import websockets

    rng = np.random.default_rng(abs(hash(url)) % 2**32)
    bodies = [
        orjson.dumps({"model": "smd", "points": nominal_points(rng, m * per_msg, per_msg)})
        for m in range(WARMUP_MESSAGES + msgs)
    ]
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        for body in bodies[:WARMUP_MESSAGES]:  # past the stream's 24-point warm-up
            await ws.send(body.decode())
            await ws.recv()
        ready.append(1)
        await start.wait()  # connections are set up and warm before the clock starts
        for body in bodies[WARMUP_MESSAGES:]:
            t1 = time.perf_counter()
            await ws.send(body.decode())
            await ws.recv()
            lat.append(time.perf_counter() - t1)


def ws_load(port: int, conns: int, per_msg: int, msgs: int, tag: str, out: Any) -> None:
    """`conns` WebSockets, each sending `msgs` messages of `per_msg` points and awaiting each
    answer; timed from when every connection is open."""
    lat: list[float] = []

    async def run() -> float:
        start, ready = asyncio.Event(), []
        clients = [
            asyncio.create_task(
                _ws_client(
                    f"ws://127.0.0.1:{port}/v1/streams/{tag}-{i}/ws",
                    msgs,
                    per_msg,
                    lat,
                    start,
                    ready,
                )
            )
            for i in range(conns)
        ]
        while len(ready) < conns:
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        start.set()
        await asyncio.gather(*clients)
        return time.perf_counter() - t0

    elapsed = asyncio.run(run())
    out.put((conns * msgs * per_msg / elapsed, lat))


def in_process(target: Any, *args: Any) -> tuple[float, list[float]]:
    q: Any = mp.Queue()
    proc = mp.Process(target=target, args=(*args, q))
    proc.start()
    result = q.get(timeout=600)
    proc.join(30)
    return result  # type: ignore[no-any-return]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(lat: list[float], q: float) -> str:
    return f"{np.percentile(lat, q) * 1000:.1f}"


def main(
    quick: Annotated[bool, typer.Option(help="fewer cases, shorter runs")] = False,
    ws_impl: Annotated[str, typer.Option(help="uvicorn --ws implementation")] = "auto",
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tad-perf-"))
    bundle = smd_sized_bundle(tmp / "models")
    seconds = 0.5 if quick else 1.0
    rows: list[Row] = model_rows(bundle, seconds)
    points = nominal(np.arange(2000 if quick else 10000), np.random.default_rng(3))
    rows.append(river_row(points))
    port = free_port()
    env = os.environ | {
        "TAD_MODEL_DIR": str(tmp / "models"),
        "TAD_PORT": str(port),
        "TAD_LOG_LEVEL": "warning",
        "TAD_MAX_BODY_BYTES": str(64 << 20),
        "TAD_MAX_WS_MESSAGE_BYTES": str(8 << 20),
    }
    tad = Path(sys.executable).with_name("tad")
    server = subprocess.Popen([str(tad), "serve"], env=env)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        pps, lat = in_process(post_load, port, 100, 10, 5 if quick else 20)
        rows.append(
            (
                "batch POST /v1/points, 100 streams × 10 points",
                f"{pps:,.0f}",
                f"{pct(lat, 50)} / {pct(lat, 99)}",
                "per request",
            )
        )
        for conns in (1, 10, 100) if quick else (1, 10, 100, 1000):
            for per_msg in (1, 10):
                msgs = max(3, (200 if quick else 1000) // conns)
                pps, lat = in_process(ws_load, port, conns, per_msg, msgs, f"ws{conns}x{per_msg}")
                rows.append(
                    (
                        f"WebSocket, {conns} connections, {per_msg} point(s)/message",
                        f"{pps:,.0f}",
                        f"{pct(lat, 50)} / {pct(lat, 99)}",
                        "per message",
                    )
                )
        before = rss_mb(server.pid)
        in_process(post_load, port, 1000, 30, 1)  # 1,000 new streams past warm-up, then idle
        after = rss_mb(server.pid)
        rows.append(
            (
                "resident memory per 1,000 idle streams",
                f"{after - before:.1f} MB",
                "",
                "service process RSS delta",
            )
        )
    finally:
        server.terminate()
        server.wait(10)
    print("\n| case (1 core each: server, load generator) | points/s | p50 / p99 ms | note |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    typer.run(main)
