"""Real uvicorn processes on a real redis-server: kill -9 recovery, two processes sharing a
stream, and behaviour while Redis is down."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.sync.client import connect

from tests.support.data import points, series
from tests.support.processes import ServerProcess, free_port, wait_for
from tests.support.redis_server import RedisServer
from tests.support.results import assert_same_results, collect, reference

CUTS = [10, 23, 24, 60, 130, 200, 205, 215, 260, 330]


def batches(n: int) -> list[tuple[int, int]]:
    bounds = [0, *CUTS, n]
    return list(zip(bounds, bounds[1:], strict=False))


def ws_send(ws: Any, body: dict[str, Any]) -> dict[str, Any]:
    ws.send(orjson.dumps(body).decode())
    reply: dict[str, Any] = orjson.loads(ws.recv())
    return reply


def test_kill_9_and_restart_continue_every_stream_exactly(
    redis_env: dict[str, str], bundle_v1: Path, tmp_path: Path
) -> None:
    x = series(400)
    server = ServerProcess(redis_env, log=tmp_path / "server.log").start()
    ws_results, http_results = [], []
    try:
        parts = batches(len(x))
        kill_after = 5  # batches 0..5 acknowledged, then SIGKILL with the socket open
        with connect(f"{server.ws}/v1/streams/ws-stream/ws") as ws:
            for lo, hi in parts[: kill_after + 1]:
                ws_results.append(ws_send(ws, {"points": points(x[lo:hi], lo)}))
                r = httpx.post(
                    f"{server.http}/v1/streams/http-stream/points",
                    json={"points": points(x[lo:hi], lo)},
                )
                http_results.append(r.json())
            server.kill9()
        server = ServerProcess(redis_env, log=tmp_path / "server.log").start()
        with connect(f"{server.ws}/v1/streams/ws-stream/ws") as ws:
            lo, hi = parts[kill_after]  # as if the client never saw this answer: it resends
            again = ws_send(ws, {"points": points(x[lo:hi], lo)})
            assert again.get("status") == ["duplicate"] * (hi - lo), again
            assert again["index"] == []
            for lo, hi in parts[kill_after + 1 :]:
                ws_results.append(ws_send(ws, {"points": points(x[lo:hi], lo)}))
                r = httpx.post(
                    f"{server.http}/v1/streams/http-stream/points",
                    json={"points": points(x[lo:hi], lo)},
                )
                http_results.append(r.json())
        want = reference(bundle_v1, x, CUTS)
        assert_same_results(collect(ws_results), want)
        assert_same_results(collect(http_results), want)
        assert want["events"], "the fault should have opened alarms on both sides of the kill"
        history = httpx.get(f"{server.http}/v1/streams/ws-stream/alarms").json()["events"]
        assert history == collect(ws_results)["events"]
        info = httpx.get(f"{server.http}/v1/streams/ws-stream").json()
        assert info["count"] == len(x)
    finally:
        server.stop()


def test_two_processes_sharing_redis_give_single_process_results(
    redis_env: dict[str, str], bundle_v1: Path, tmp_path: Path
) -> None:
    x = series(400)
    a = ServerProcess(redis_env, log=tmp_path / "a.log")
    b = ServerProcess(redis_env, log=tmp_path / "b.log")
    threads = [threading.Thread(target=s.start) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        results = []
        for i, (lo, hi) in enumerate(batches(len(x))):
            target = (a, b)[i % 2]
            r = httpx.post(
                f"{target.http}/v1/streams/shared/points", json={"points": points(x[lo:hi], lo)}
            )
            assert r.status_code == 200, r.text
            results.append(r.json())
        assert_same_results(collect(results), reference(bundle_v1, x, CUTS))
        assert httpx.get(f"{a.http}/v1/alarms").json() == httpx.get(f"{b.http}/v1/alarms").json()

        # the same batch sent to both at once: exactly one process scores it
        y = series(60, seed=9)
        httpx.post(f"{a.http}/v1/streams/race/points", json={"points": points(y[:30])})
        for round_ in range(3):
            lo, hi = 30 + 10 * round_, 40 + 10 * round_
            replies = race([a, b], "/v1/streams/race/points", {"points": points(y[lo:hi], lo)})
            assert sorted(r["accepted"] for r in replies) == [0, 10], replies
        assert httpx.get(f"{b.http}/v1/streams/race").json()["count"] == 60
    finally:
        a.stop()
        b.stop()


def race(servers: list[ServerProcess], path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST the same body to every server at the same moment."""
    replies: list[dict[str, Any]] = []
    barrier = threading.Barrier(len(servers))

    def send(server: ServerProcess) -> None:
        barrier.wait()
        replies.append(httpx.post(f"{server.http}{path}", json=body).json())

    threads = [threading.Thread(target=send, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return replies


def test_redis_down_means_503_not_ready_and_recovery(
    make_client: Any, redis_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    c = make_client(
        redis_url=f"redis://127.0.0.1:{port}/0", redis_prefix=redis_prefix, store_timeout_s=0.5
    )
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["store_ok"] is False
    r = c.post("/v1/streams/s/points", json={"points": points(series(5))})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["type"] == "unavailable"
    with c.websocket_connect("/v1/streams/s/ws") as ws:
        ws.send_text(orjson.dumps({"points": points(series(5))}).decode())
        assert ws.receive_json()["error"]["type"] == "unavailable"
        closed = ws.receive()
        assert closed["type"] == "websocket.close" and closed["code"] == 1013
    metrics = c.get("/metrics").text
    assert "tad_store_up 0.0" in metrics and 'reason="unavailable"} 10.0' in metrics

    server = RedisServer(tmp_path, persistent=False, port=port).start()
    try:
        wait_for(lambda: c.get("/readyz").status_code == 200, 15, "readiness after redis is back")
        r = c.post("/v1/streams/s/points", json={"points": points(series(5))})
        assert r.status_code == 200 and r.json()["accepted"] == 5
    finally:
        server.stop()


def test_redis_out_of_memory_is_503_and_nothing_is_acknowledged(
    make_client: Any, redis_prefix: str, tmp_path: Path
) -> None:
    import redis

    server = RedisServer(tmp_path, "--maxmemory-policy", "noeviction", persistent=False).start()
    port = server.port
    try:
        r = redis.Redis(port=port)
        c = make_client(redis_url=f"redis://127.0.0.1:{port}/0", redis_prefix=redis_prefix)
        ok = c.post("/v1/streams/s/points", json={"points": points(series(30))})
        assert ok.status_code == 200
        before = c.get("/v1/streams/s").json()["last_timestamp"]
        r.config_set("maxmemory", "1")  # every write that may grow memory is now refused
        resp = c.post("/v1/streams/s/points", json={"points": points(series(60), start=30)})
        assert resp.status_code == 503, resp.text
        assert resp.headers["retry-after"]
        r.config_set("maxmemory", "0")
        assert c.get("/v1/streams/s").json()["last_timestamp"] == before
    finally:
        server.stop()
