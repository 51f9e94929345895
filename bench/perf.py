"""Performance side by side (issue 6), on loopback, load generator in a separate process.

    python bench/perf.py                 # ~3 minutes on 2 cores
    python bench/perf.py --quick         # fewer connection counts, shorter runs

Prints one markdown table: model points/s per core (full window vs incremental step, batch
1/64/1024), end-to-end batch POST and WebSocket points/s with p50/p99 latency, River's
HalfSpaceTrees on the same points, and resident memory per 1,000 idle streams. The model is
SMD-sized (C = 38, d = 128, df = 5), trained for one epoch on generated data: speed does not
depend on the weights.

Why one file of ~570 lines: every row of the performance table comes from one run of one script
(figures side by side with their baseline, on the same machine state), as the README promises.
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
from tests.support.redis_server import RedisServer, RedisServerMissing  # noqa: E402

C, L = 38, 24
WARMUP_MESSAGES = 25  # per connection, untimed: stream creation and the window's warm-up
Row = tuple[str, str, str, str, str]  # case, points/s, p50 / p99, target, note


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
    from model_training.export import train_and_export
    from model_training.train import TrainConfig

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
        target = "≈ 70-80k step" if batch > 1 else ""
        rows.append((f"model, batch {batch}", f"{f:,.0f} / {s:,.0f}", "", target, "full / step"))
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
    return ("River HalfSpaceTrees (learn_one + score_one)", f"{pps:,.0f}", "", "", "baseline")


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
    elapsed, lat = timed_posts(port, "/v1/points", bodies, "application/json")
    out.put((streams * per_stream * requests / elapsed, lat))


def timed_posts(
    port: int, path: str, bodies: list[bytes], content_type: str
) -> tuple[float, list[float]]:
    """POST the bodies one after the other; (seconds in all, seconds per request)."""
    lat = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        t0 = time.perf_counter()
        for body in bodies:
            t1 = time.perf_counter()
            resp = client.post(path, content=body, headers={"content-type": content_type})
            lat.append(time.perf_counter() - t1)
            resp.raise_for_status()
        return time.perf_counter() - t0, lat


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


def ws_load(port: int | list[int], conns: int, per_msg: int, msgs: int, tag: str, out: Any) -> None:
    """`conns` WebSockets, each sending `msgs` messages of `per_msg` points and awaiting each
    answer; timed from when every connection is open. With several ports (one server process
    each), connection i goes to port i mod their number: streams pinned to a process."""
    ports = port if isinstance(port, list) else [port]
    lat: list[float] = []

    async def run() -> float:
        start, ready = asyncio.Event(), []
        clients = [
            asyncio.create_task(
                _ws_client(
                    f"ws://127.0.0.1:{ports[i % len(ports)]}/v1/streams/{tag}-{i}/ws",
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
            failed = [c for c in clients if c.done() and c.exception() is not None]
            if failed:
                raise RuntimeError(f"a WebSocket client failed: {failed[0].exception()!r}")
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        start.set()
        await asyncio.gather(*clients)
        return time.perf_counter() - t0

    elapsed = asyncio.run(run())
    out.put((conns * msgs * per_msg / elapsed, lat))


SERVER_CORE, LOAD_CORE = 0, 1


def pin(core: int) -> None:
    """Run the calling process on one core (both cores exist on the benchmark machine)."""
    if hasattr(os, "sched_setaffinity") and core in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {core})


def _pinned(core: int | None, target: Any, args: tuple[Any, ...]) -> None:
    if core is not None:
        pin(core)
    target(*args)


def in_process(target: Any, *args: Any, core: int | None = LOAD_CORE) -> tuple[float, list[float]]:
    """Run a load generator in its own process, by default on the core the server does not
    use (None: on any core)."""
    q: Any = mp.Queue()
    proc = mp.Process(target=_pinned, args=(core, target, (*args, q)))
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


class Server:
    """`tad serve` (or the WebSocket echo app) on a free port, pinned to SERVER_CORE."""

    def __init__(
        self,
        models: Path,
        ws_impl: str,
        echo: bool = False,
        core: int = SERVER_CORE,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        env = (
            os.environ
            | {
                "TAD_MODEL_DIR": str(models),
                "TAD_PORT": str(self.port),
                "TAD_LOG_LEVEL": "warning",
                "TAD_MAX_BODY_BYTES": str(64 << 20),
                "TAD_MAX_WS_MESSAGE_BYTES": str(8 << 20),
                "TAD_WS_IMPL": ws_impl,
            }
            | (env or {})
        )
        tad = Path(sys.executable).with_name("tad")
        cmd = (
            [sys.executable, str(Path(__file__).with_name("ws_echo.py")), str(self.port), ws_impl]
            if echo
            else [str(tad), "serve"]
        )
        self.proc = subprocess.Popen(cmd, env=env, preexec_fn=lambda: pin(core))
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the server did not become ready")

    def cpu_s(self) -> float:
        """CPU seconds the server has used so far (user + system)."""
        return _proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def post_binary_load(port: int, points: int, requests: int, out: Any) -> None:
    """POST /v1/streams/{id}/points with a binary body (float64 time + float32 values)."""
    rng = np.random.default_rng(5)
    record = np.dtype([("timestamp", "<f8"), ("values", "<f4", (C,))])
    bodies = []
    for r in range(requests):
        rec = np.zeros(points, record)
        rec["timestamp"] = np.arange(r * points, (r + 1) * points)
        rec["values"] = nominal(rec["timestamp"], rng)
        bodies.append(rec.tobytes())
    path = "/v1/streams/binary/points?model=smd"
    elapsed, lat = timed_posts(port, path, bodies, "application/octet-stream")
    out.put((points * requests / elapsed, lat))


IDLE_S = 1.0  # TAD_EMBEDDING_IDLE_S of the memory server (default 300 s)


def memory_rows(models: Path, ws_impl: str, streams: int = 1000) -> list[Row]:
    """RSS growth of a fresh server for `streams` new streams past their warm-up: right after
    (every stream keeps its embedding cache), and once they have been silent longer than
    TAD_EMBEDDING_IDLE_S (caches given back). The first 100 streams warm the code paths and the
    allocator, and are idle themselves before the baseline is read."""
    server = Server(models, ws_impl, env={"TAD_EMBEDDING_IDLE_S": str(IDLE_S)})
    try:
        in_process(post_load_named, server.port, "warm", 100, 30)
        time.sleep(3 * IDLE_S)
        before = rss_mb(server.proc.pid)
        in_process(post_load_named, server.port, "idle", streams, 30)
        time.sleep(0.2)
        active = (rss_mb(server.proc.pid) - before) * 1000 / streams
        time.sleep(3 * IDLE_S)
        idle = (rss_mb(server.proc.pid) - before) * 1000 / streams
    finally:
        server.stop()
    return [
        (
            "resident memory per 1,000 streams just served",
            f"{active:.1f} MB",
            "",
            "",
            "service RSS growth, 38 channels, embedding caches kept",
        ),
        (
            f"resident memory per 1,000 idle streams (silent > {IDLE_S:g} s)",
            f"{idle:.1f} MB",
            "",
            "≤ 16 MB",
            "the same streams once TAD_EMBEDDING_IDLE_S gave their caches back",
        ),
    ]


def post_load_named(port: int, tag: str, streams: int, per_stream: int, out: Any) -> None:
    """`streams` new streams `tag-i`, `per_stream` nominal points each, 100 streams a request."""
    rng = np.random.default_rng(7)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for lo in range(0, streams, 100):
            body = {
                "streams": [
                    {
                        "stream_id": f"{tag}-{i}",
                        "model": "smd",
                        "points": nominal_points(rng, 0, per_stream),
                    }
                    for i in range(lo, min(lo + 100, streams))
                ]
            }
            client.post("/v1/points", content=orjson.dumps(body)).raise_for_status()
    out.put((0.0, []))


TARGETS = {  # issue 14: case → (points/s at least, p99 ms at most)
    "post-json": (60_000, None),
    "post-binary": (100_000, None),
    (100, 1): (15_000, 10.0),
    (1000, 1): (10_000, 100.0),
    (100, 10): (60_000, None),
}


def target_text(key: Any) -> str:
    if key not in TARGETS:
        return ""
    pps, p99 = TARGETS[key]
    return f"≥ {pps:,}" + (f", p99 ≤ {p99:g}" if p99 is not None else "")


def _nominal_points(
    rng: np.random.Generator, start: int, n: int, n_channels: int
) -> list[dict[str, Any]]:
    return nominal_points(rng, start, n)


def _cost(models: Path, out: Any) -> None:
    import message_cost  # bench/, beside this file

    out.put((message_cost.measure(models, 100, 200, 1, make=_nominal_points), []))


def cost_rows(models: Path, e2e_msgs: float, echo_msgs: float) -> list[Row]:
    """Per-message cost, 100 streams × 1 point: end to end and the WebSocket layer from this
    run's servers, the in-process split from bench/message_cost.py on the server's core (its
    batches form differently from a server's, so the parts need not add up to the total)."""
    cost: dict[str, float] = in_process(_cost, models, core=SERVER_CORE)[0]  # type: ignore[assignment]
    parts = [
        ("per message, 100 streams × 1 point: end to end (1 / messages/s)", 1e6 / e2e_msgs),
        ("… WebSocket layer alone: uvicorn + Starlette (1 / echo messages/s)", 1e6 / echo_msgs),
        ("… in process, no sockets (bench/message_cost.py): everything below", cost["total_us"]),
        ("… … service: parse, checks, locks, commit, reply, thread hand-off", cost["service_us"]),
        ("… … scoring: the core's numpy and Python (caches, p-values, alarms)", cost["core_us"]),
        ("… … scoring: ONNX Runtime (embedding + step graphs)", cost["onnx_us"]),
    ]
    return [(name, f"{us:.0f} µs", "", "", "per message") for name, us in parts]


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _redis(tmp: Path) -> RedisServer | None:
    """The tests' private redis-server (nothing on disk) on a free port; None where none is
    installed."""
    try:
        return RedisServer(tmp / "redis", persistent=False).start()
    except RedisServerMissing:
        return None


def two_process_rows(
    models: Path, ws_impl: str, n_msgs: int, one_per_core: float, tmp: Path
) -> list[Row]:
    """Two server processes (one per core), streams pinned to a process by connection, the
    load generator sharing the cores: with a memory store each, then sharing one Redis. CPU
    per message counts the servers (and redis-server), all messages (warm-up included)."""
    rows = []
    for store in ("memory store each", "shared Redis"):
        started = _redis(tmp) if store == "shared Redis" else None
        if store == "shared Redis" and started is None:
            continue
        redis, env = (None, {}) if started is None else (started, {"TAD_REDIS_URL": started.url})
        servers = [Server(models, ws_impl, core=c, env=env) for c in (SERVER_CORE, LOAD_CORE)]
        pids = [s.proc.pid for s in servers] + ([redis.pid] if redis is not None else [])
        try:
            conns, msgs = 100, max(3, n_msgs // 100)
            cpu0 = sum(_proc_cpu_s(p) for p in pids)
            ports = [s.port for s in servers]
            pps, lat = in_process(ws_load, ports, conns, 1, msgs, f"two{len(rows)}", core=None)
            cpu = sum(_proc_cpu_s(p) for p in pids) - cpu0
        finally:
            for s in servers:
                s.stop()
            if redis is not None:
                redis.stop()
        per_core = conns * (msgs + WARMUP_MESSAGES) / cpu
        rows.append(
            (
                f"WebSocket, 2 processes × 1 core ({store}), 100 connections, 1 point/message",
                f"{pps:,.0f}",
                f"{pct(lat, 50)} / {pct(lat, 99)}",
                "",
                f"{per_core:,.0f} points per CPU-second of the servers"
                f"{' and redis-server' if redis is not None else ''} (1 process, memory: "
                f"{one_per_core:,.0f}); load generator on the same 2 cores",
            )
        )
    return rows


def mqtt_rows(
    models: Path, ws_impl: str, n_msgs: int, tmp: Path, measured: dict[Any, Any]
) -> list[Row]:
    """Issue 27: 100 MQTT publishers × 1 point per message, closed loop (bench/mqtt_load.py),
    next to the WebSocket 100 × 1 row of the same run."""
    from bench.mqtt_load import mqtt_load, server_env
    from tests.support.mosquitto import Mosquitto, MosquittoMissing

    try:
        broker = Mosquitto(tmp / "mosquitto")
    except MosquittoMissing as exc:
        return [("MQTT, 100 publishers, 1 point/message", "–", "–", "–", f"not run: {exc}")]
    broker.start()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(broker.pid, {LOAD_CORE})
    server = Server(models, ws_impl, env=server_env(broker.url, "perf"))
    try:
        pps, lat = in_process(
            mqtt_load, broker.port, 100, max(3, n_msgs // 100), "perf", nominal_points
        )
        measured["mqtt"] = (pps, lat)
        return [
            (
                "MQTT QoS 1, 100 publishers, 1 point/message (broker on the load core)",
                f"{pps:,.0f}",
                f"{pct(lat, 50)} / {pct(lat, 99)}",
                "–",
                "publish → result on the score topic",
            )
        ]
    finally:
        server.stop()
        broker.stop()


def main(
    quick: Annotated[bool, typer.Option(help="fewer cases, shorter runs")] = False,
    ws_impl: Annotated[str, typer.Option(help="uvicorn --ws implementation")] = (
        "websockets-sansio"
    ),
) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tad-perf-"))
    models = tmp / "models"
    bundle = smd_sized_bundle(models)
    all_cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    pin(SERVER_CORE)  # the model rows: one core, like the server
    seconds = 0.5 if quick else 1.0
    rows: list[Row] = model_rows(bundle, seconds)
    points = nominal(np.arange(2000 if quick else 10000), np.random.default_rng(3))
    river = river_row(points)
    river_pps = float(river[1].replace(",", ""))
    rows.append(river)
    if all_cores:
        os.sched_setaffinity(0, all_cores)
    n_msgs = 2000 if quick else 6000
    measured: dict[Any, tuple[float, list[float]]] = {}

    def ws_row(port: int, conns: int, per_msg: int, label: str, key: Any = None) -> Row:
        msgs = max(3, n_msgs // conns)
        tag = "".join(ch for ch in label if ch.isalnum())[:40] + f"-{conns}x{per_msg}"
        pps, lat = in_process(ws_load, port, conns, per_msg, msgs, tag)
        if key is not None:
            measured[key] = (pps, lat)
        return (
            f"{label}, {conns} connections, {per_msg} point(s)/message",
            f"{pps:,.0f}",
            f"{pct(lat, 50)} / {pct(lat, 99)}",
            target_text(key),
            "per message",
        )

    server = Server(models, ws_impl)
    try:
        pps, lat = in_process(post_load, server.port, 100, 10, 5 if quick else 20)
        measured["post-json"] = (pps, lat)
        rows.append(
            (
                "batch POST /v1/points (JSON), 100 streams × 10 points",
                f"{pps:,.0f}",
                f"{pct(lat, 50)} / {pct(lat, 99)}",
                target_text("post-json"),
                "per request",
            )
        )
        pps, lat = in_process(post_binary_load, server.port, 1000, 5 if quick else 20)
        measured["post-binary"] = (pps, lat)
        rows.append(
            (
                "POST one stream, binary float32 body, 1,000 points",
                f"{pps:,.0f}",
                f"{pct(lat, 50)} / {pct(lat, 99)}",
                target_text("post-binary"),
                "per request",
            )
        )
        for conns in (1, 10, 100) if quick else (1, 10, 100, 1000):
            for per_msg in (1, 10):
                if (conns, per_msg) == (100, 1):
                    cpu0 = server.cpu_s()
                rows.append(ws_row(server.port, conns, per_msg, "WebSocket", (conns, per_msg)))
                if (conns, per_msg) == (100, 1):
                    all_msgs = conns * (max(3, n_msgs // conns) + WARMUP_MESSAGES)
                    one_per_core = all_msgs / (server.cpu_s() - cpu0)
    finally:
        server.stop()
    # issue 26: the same 100 × 1 WebSocket case with a day of history kept per stream
    recording = Server(models, ws_impl, env={"TAD_HISTORY_POINTS": str(86_400)})
    try:
        rows.append(
            ws_row(
                recording.port, 100, 1, "WebSocket, recording history (86,400 a stream)", "history"
            )
        )
    finally:
        recording.stop()
    rows.extend(mqtt_rows(models, ws_impl, n_msgs, tmp, measured))
    ceiling = Server(models, ws_impl, echo=True)
    try:
        rows.append(ws_row(ceiling.port, 100, 1, f"echo only ({ws_impl}, no scoring)", "echo"))
    finally:
        ceiling.stop()
    for other in ("websockets", "wsproto", "websockets-sansio"):
        s = Server(models, other)
        try:
            rows.append(ws_row(s.port, 100, 1, f"WebSocket via {other}"))
        finally:
            s.stop()
    if len(all_cores) >= 2:
        rows.extend(two_process_rows(models, ws_impl, n_msgs, one_per_core, tmp))
    rows.extend(cost_rows(models, measured[100, 1][0], measured["echo"][0]))
    rows.extend(memory_rows(models, ws_impl))
    print(f"\nRiver HalfSpaceTrees: {river_pps:,.0f} points/s; 2× River = {2 * river_pps:,.0f}")
    print(
        "\n| case (server on one core, load generator on the other) | points/s | p50 / p99 ms "
        "| target | note |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    if "history" in measured:
        plain, rec = measured[100, 1][0], measured["history"][0]
        cost = (1 - rec / plain) * 100
        print(
            f"recording history: {rec:,.0f} against {plain:,.0f} points/s, {cost:.1f} % of "
            f"ingest throughput (target ≤ 5 %): {'met' if cost <= 5 else 'missed'}"
        )
    for key in TARGETS:
        if key not in measured:
            continue
        pps, lat = measured[key]
        want_pps, want_p99 = TARGETS[key]
        p99 = float(np.percentile(lat, 99) * 1000)
        met = pps >= want_pps and (want_p99 is None or p99 <= want_p99)
        vs_river = "≥" if pps >= 2 * river_pps else "<"
        print(
            f"{key}: {pps:,.0f} points/s, p99 {p99:.1f} ms against {target_text(key)}: "
            f"{'met' if met else 'missed'}; {vs_river} 2× River"
        )


if __name__ == "__main__":
    typer.run(main)
