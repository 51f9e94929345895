"""A bounded soak of the streaming service: many concurrent WebSocket streams plus POST batches on
loopback, with the service's memory, open alarms and latency recorded over time.

    .venv/bin/python bench/soak.py                       # 1,000 streams, 0.5 msg/s each, 1 minute
    .venv/bin/python bench/soak.py --minutes 10          # longer
    .venv/bin/python bench/soak.py --url http://127.0.0.1:8000 --pid 1234   # a running service

Without --url it starts `tad serve` (uvicorn) itself, with the demo bundle (trained into a
temporary directory unless --model-dir has bundles) and, if redis-server is installed, its own
private Redis as the store (--redis none: in memory). Every stream sends `--batch` points per
message at `--rate` messages a second and checks each answer: no error, the points acknowledged
in order (no lost, repeated or reordered result). A POST client sends batches for
`--post-streams` more streams to POST /v1/points. Every `--sample-s` seconds it records the
service's resident memory (when it knows the pid), the open alarms (GET /v1/alarms), the
acknowledged messages and the latency of the answers in that window.

It prints the samples and a summary, writes them as JSON with --json, and exits 1 if a check
failed: any error or lost/reordered result, a stream whose stored count differs from what was
acknowledged, or memory growing after warm-up by more than --rss-tolerance-mb.

Why one file of ~550 lines: a soak is run by hand on a target machine as `python bench/soak.py`,
so load generator, checks, own service and report travel together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.demo import demo_series  # noqa: E402
from tests.support.redis_server import RedisServer, RedisServerMissing  # noqa: E402

N_PATTERNS = 8


@dataclass
class Sample:
    t: float
    rss_mb: float | None
    open_alarms: int
    acked_messages: int
    acked_points: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    ws_connections: float | None


@dataclass
class Summary:
    streams: int
    post_streams: int
    seconds: float
    messages: int = 0
    points: int = 0
    post_requests: int = 0
    errors: list[str] = field(default_factory=list)
    lost_or_reordered: int = 0
    count_mismatches: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    post_latency_ms: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    open_alarms_max: int = 0
    alarms_opened: float = 0.0
    failed: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values) * 1000
    return {
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def patterns(length: int) -> list[np.ndarray]:
    """Demo series with a fault somewhere in most of them, so alarms open and close."""
    out = []
    for k in range(N_PATTERNS):
        a = (
            None
            if k % 4 == 3
            else (int(length * (0.2 + 0.08 * k)), int(length * (0.2 + 0.08 * k)) + 40)
        )
        out.append(demo_series(length, seed=100 + k, anomaly=a, start=2000 + 97 * k))
    return out


class Soak:
    def __init__(self, args: argparse.Namespace, http: str, pid: int | None) -> None:
        self.args, self.http, self.pid = args, http.rstrip("/"), pid
        self.ws = "ws" + self.http.removeprefix("http")
        self.headers = {"X-API-Key": args.api_key} if args.api_key else {}
        self.seconds = args.minutes * 60
        per_stream = int(self.seconds * args.rate * args.batch) + 10 * args.batch
        self.data = patterns(per_stream + 200)
        self.post_data = patterns(
            int(self.seconds / args.post_interval + 2) * args.post_batch + 200
        )
        self.summary = Summary(args.streams, args.post_streams, self.seconds)
        self.samples: list[Sample] = []
        self.latencies: list[float] = []
        self.window: list[float] = []
        self.sent: dict[str, int] = {}
        self.stop = asyncio.Event()
        self.tag = f"soak{int(time.time())}"

    def series_for(self, i: int) -> np.ndarray:
        base = self.data[i % N_PATTERNS]
        return np.roll(base, -(i * 37) % 150, axis=0)

    async def stream(self, i: int, start: float) -> None:
        a, s = self.args, self.summary
        sid = f"{self.tag}-ws-{i}"
        x = self.series_for(i)
        seq = 0
        period = 1.0 / a.rate
        try:
            async with connect(
                f"{self.ws}/v1/streams/{sid}/ws",
                additional_headers=self.headers,
                max_size=None,
                open_timeout=60,
                ping_interval=None,
            ) as ws:
                next_t = start + (i % 97) / 97 * period
                while not self.stop.is_set():
                    await asyncio.sleep(max(0.0, next_t - time.monotonic()))
                    if self.stop.is_set():
                        break
                    pts = [{"seq": seq + j, "values": x[seq + j].tolist()} for j in range(a.batch)]
                    t0 = time.perf_counter()
                    await ws.send(orjson.dumps({"points": pts}).decode())
                    reply = orjson.loads(await ws.recv())
                    dt = time.perf_counter() - t0
                    if "error" in reply:
                        s.errors.append(f"{sid}: {reply['error']}")
                        return
                    if (
                        reply["index"] != list(range(seq, seq + a.batch))
                        or reply["status"] != ["accepted"] * a.batch
                    ):
                        s.lost_or_reordered += 1
                        s.errors.append(f"{sid}: expected {seq}.. got {reply['index'][:3]}..")
                        return
                    seq += a.batch
                    self.sent[sid] = seq
                    s.messages += 1
                    s.points += a.batch
                    self.latencies.append(dt)
                    self.window.append(dt)
                    next_t += period
        except Exception as exc:  # a dropped connection is an error of the soak
            s.errors.append(f"{sid}: {type(exc).__name__}: {exc}")

    async def poster(self, client: httpx.AsyncClient) -> None:
        a, s = self.args, self.summary
        if a.post_streams == 0:
            return
        sids = [f"{self.tag}-post-{k}" for k in range(a.post_streams)]
        seq, lat = 0, []
        while not self.stop.is_set():
            t0 = time.perf_counter()
            body = {
                "streams": [
                    {
                        "stream_id": sid,
                        "points": [
                            {
                                "seq": seq + j,
                                "values": self.post_data[k % N_PATTERNS][seq + j].tolist(),
                            }
                            for j in range(a.post_batch)
                        ],
                    }
                    for k, sid in enumerate(sids)
                ]
            }
            try:
                r = await client.post(f"{self.http}/v1/points", json=body, headers=self.headers)
            except httpx.HTTPError as exc:
                s.errors.append(f"POST: {type(exc).__name__}: {exc}")
                return
            if r.status_code != 200:
                s.errors.append(f"POST {r.status_code}: {r.text[:200]}")
                return
            for res in r.json()["results"]:
                if res["index"] != list(range(seq, seq + a.post_batch)):
                    s.lost_or_reordered += 1
            seq += a.post_batch
            for sid in sids:
                self.sent[sid] = seq
            lat.append(time.perf_counter() - t0)
            s.post_requests += 1
            s.points += a.post_batch * len(sids)
            await asyncio.sleep(max(0.0, a.post_interval - (time.perf_counter() - t0)))
        s.post_latency_ms = percentiles(lat)

    async def sampler(self, client: httpx.AsyncClient, t0: float) -> None:
        while not self.stop.is_set():
            await self.sample(client, t0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.args.sample_s)

    async def sample(self, client: httpx.AsyncClient, t0: float) -> None:
        s = self.summary
        try:
            alarms = (await client.get(f"{self.http}/v1/alarms", headers=self.headers)).json()
            n_open = len(alarms.get("alarms", alarms.get("open", [])))
            text = (await client.get(f"{self.http}/metrics", headers=self.headers)).text
        except httpx.HTTPError as exc:
            s.errors.append(f"sampling: {type(exc).__name__}: {exc}")
            return
        conns = next(
            (
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("tad_websocket_connections ")
            ),
            None,
        )
        w, self.window = self.window, []
        lat = percentiles(w)
        self.samples.append(
            Sample(
                round(time.monotonic() - t0, 1),
                rss_mb(self.pid),
                n_open,
                s.messages,
                s.points,
                lat.get("p50"),
                lat.get("p99"),
                conns,
            )
        )
        s.open_alarms_max = max(s.open_alarms_max, n_open)
        s.alarms_opened = sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("tad_alarms_opened_total")
        )

    async def run(self) -> Summary:
        a = self.args
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            t0 = time.monotonic()
            await self.sample(client, t0)  # before any stream
            tasks = []
            for i in range(a.streams):  # ramp up: a burst of handshakes is not the test
                tasks.append(asyncio.create_task(self.stream(i, time.monotonic())))
                if i % 50 == 49:
                    await asyncio.sleep(0.05)
            side = [
                asyncio.create_task(self.poster(client)),
                asyncio.create_task(self.sampler(client, t0)),
            ]
            await asyncio.sleep(max(0.0, self.seconds - (time.monotonic() - t0)))
            self.stop.set()
            await asyncio.gather(*tasks, *side)
            await self.sample(client, t0)
            await self.check_counts(client)
        self.summary.seconds = round(time.monotonic() - t0, 1)
        self.summary.latency_ms = percentiles(self.latencies)
        self.judge()
        return self.summary

    async def check_counts(self, client: httpx.AsyncClient) -> None:
        """Every stream holds exactly what was acknowledged to it."""
        sem = asyncio.Semaphore(16)

        async def one(sid: str, n: int) -> None:
            async with sem:
                r = await client.get(f"{self.http}/v1/streams/{sid}", headers=self.headers)
            if r.status_code != 200 or r.json()["count"] != n:
                self.summary.count_mismatches += 1
                self.summary.errors.append(f"{sid}: stored {r.text[:120]}, acknowledged {n}")

        await asyncio.gather(*(one(sid, n) for sid, n in self.sent.items()))

    def judge(self) -> None:
        s, a = self.summary, self.args
        rss = [(x.t, x.rss_mb) for x in self.samples if x.rss_mb is not None]
        if rss:
            warm = a.warmup * s.seconds
            after = [m for t, m in rss if t >= warm]
            s.rss_mb = {"start": rss[0][1], "max": max(m for _, m in rss), "end": rss[-1][1]}
            if len(after) >= 4:
                third = max(1, len(after) // 3)
                early, late = max(after[:third]), max(after[-third:])
                s.rss_mb |= {"after_warmup": early, "last_third_max": late}
                ts = np.array([t for t, _ in rss if t >= warm])
                s.rss_mb["slope_mb_per_min"] = float(np.polyfit(ts, after, 1)[0] * 60)
                if late - early > a.rss_tolerance_mb:
                    s.failed.append(
                        f"memory grew {late - early:.1f} MB after warm-up "
                        f"(tolerance {a.rss_tolerance_mb} MB)"
                    )
        if s.errors:
            s.failed.append(f"{len(s.errors)} errors")
        if s.lost_or_reordered:
            s.failed.append(f"{s.lost_or_reordered} lost or reordered results")
        if s.count_mismatches:
            s.failed.append(f"{s.count_mismatches} streams hold other counts than acknowledged")
        if s.messages == 0:
            s.failed.append("no message was acknowledged")


def nan(x: float | None) -> float:
    return float("nan") if x is None else x


def report(soak: Soak, summary: Summary, out: Any = sys.stdout) -> None:
    a = soak.args
    print(
        f"soak: {a.streams} WebSocket streams x {a.rate:g} msg/s x {a.batch} point(s), "
        f"POST {a.post_streams} streams x {a.post_batch} points every {a.post_interval:g} s, "
        f"{summary.seconds:g} s",
        file=out,
    )
    print(
        f"{'t s':>7} {'RSS MB':>8} {'open alarms':>11} {'messages':>9} {'points':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'sockets':>8}",
        file=out,
    )
    step = max(1, len(soak.samples) // 40)
    rows = soak.samples[::step]
    if soak.samples and rows[-1] is not soak.samples[-1]:
        rows.append(soak.samples[-1])
    for x in rows:
        print(
            f"{x.t:7.1f} {nan(x.rss_mb):8.1f} {x.open_alarms:11d} {x.acked_messages:9d} "
            f"{x.acked_points:9d} {nan(x.latency_p50_ms):8.1f} {nan(x.latency_p99_ms):8.1f} "
            f"{nan(x.ws_connections):8.0f}",
            file=out,
        )
    rate = summary.messages / summary.seconds if summary.seconds else 0.0
    lat = summary.latency_ms
    print(
        f"messages {summary.messages} ({rate:.0f}/s), points {summary.points}, "
        f"POST requests {summary.post_requests}",
        file=out,
    )
    if lat:
        print(
            f"WebSocket latency ms: p50 {lat['p50']:.1f}  p95 {lat['p95']:.1f}  "
            f"p99 {lat['p99']:.1f}  max {lat['max']:.1f}",
            file=out,
        )
    if summary.post_latency_ms:
        p = summary.post_latency_ms
        print(
            f"POST latency ms: p50 {p['p50']:.1f}  p99 {p['p99']:.1f}  max {p['max']:.1f}", file=out
        )
    if summary.rss_mb:
        r = summary.rss_mb
        print("service RSS MB: " + "  ".join(f"{k} {v:.1f}" for k, v in r.items()), file=out)
    print(
        f"open alarms: max {summary.open_alarms_max}; alarms opened {summary.alarms_opened:g}; "
        f"errors {len(summary.errors)}; lost/reordered {summary.lost_or_reordered}; "
        f"count mismatches {summary.count_mismatches}",
        file=out,
    )
    for e in summary.errors[:10]:
        print(f"  error: {e}", file=out)
    print("FAILED: " + "; ".join(summary.failed) if summary.failed else "OK", file=out)


class LocalService:
    """`tad serve` (and a private redis-server) started by the soak itself."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="tad-soak-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = free_port()
        self.server: subprocess.Popen[bytes] | None = None
        self.redis_server: RedisServer | None = None

    def models(self) -> Path:
        if self.args.model_dir:
            return Path(self.args.model_dir)
        from service.demo import ensure_demo_bundle

        d = self.tmp / "models"
        d.mkdir()
        print("training the demo bundle (a few seconds)…", file=sys.stderr)
        ensure_demo_bundle(d)
        return d

    def redis(self) -> str | None:
        choice = self.args.redis
        if choice == "none":
            return None
        if choice != "auto":
            return str(choice)
        try:
            server = RedisServer(self.tmp / "redis", persistent=False).start()
        except RedisServerMissing:
            print("no redis-server: state in memory", file=sys.stderr)
            return None
        self.redis_server = server
        return server.url

    def start(self) -> tuple[str, int]:
        env = {
            **os.environ,
            "TAD_MODEL_DIR": str(self.models()),
            "TAD_PORT": str(self.port),
            "TAD_HOST": "127.0.0.1",
            "TAD_LOG_LEVEL": "warning",
        }
        url = self.redis()
        if url:
            env["TAD_REDIS_URL"] = url
        log = (self.tmp / "server.log").open("wb")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(self.server)
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise SystemExit(
                    f"the service exited: {(self.tmp / 'server.log').read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    return base, self.server.pid
            time.sleep(0.2)
        raise SystemExit("the service did not become ready")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        if self.redis_server is not None:
            self.redis_server.stop()
        log = self.tmp / "server.log"
        if log.exists() and "Traceback" in log.read_text():
            print(f"service log has a traceback: {log}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--streams", type=int, default=1000, help="concurrent WebSocket streams")
    p.add_argument("--minutes", type=float, default=1.0, help="duration")
    p.add_argument("--rate", type=float, default=0.5, help="messages a second per stream")
    p.add_argument("--batch", type=int, default=1, help="points per WebSocket message")
    p.add_argument("--post-streams", type=int, default=100, help="streams fed by POST /v1/points")
    p.add_argument("--post-batch", type=int, default=5, help="points per stream per POST")
    p.add_argument("--post-interval", type=float, default=1.0, help="seconds between POSTs")
    p.add_argument("--sample-s", type=float, default=2.0, help="seconds between samples")
    p.add_argument("--warmup", type=float, default=0.25, help="share of the run that is warm-up")
    p.add_argument("--rss-tolerance-mb", type=float, default=24.0, help="allowed RSS growth")
    p.add_argument("--url", help="a running service (http://host:port); default: start one")
    p.add_argument("--pid", type=int, help="its process id, to record its memory")
    p.add_argument("--api-key", default=os.environ.get("TAD_SOAK_API_KEY"))
    p.add_argument("--model-dir", help="bundles for the service it starts (default: demo)")
    p.add_argument("--redis", default="auto", help="auto (own redis-server), none, or a URL")
    p.add_argument("--json", type=Path, help="write samples and summary here")
    args = p.parse_args(argv)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * args.streams + 256  # client and server sockets of every stream, plus slack
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))

    local = None if args.url else LocalService(args)
    try:
        if local is not None:
            http, pid = local.start()
        else:
            http, pid = args.url, args.pid
        soak = Soak(args, http, pid)
        summary = asyncio.run(soak.run())
    finally:
        if local is not None:
            local.stop()
    report(soak, summary)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"json": str(args.json)},
                    "samples": [asdict(x) for x in soak.samples],
                    "summary": asdict(summary),
                },
                indent=1,
                default=str,
            )
        )
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
