"""WebSocket ingest on a real uvicorn: order, pipelining, multiplexing, close codes, reload."""

from __future__ import annotations

import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.data import clone_bundle, later, points, series
from tests.support.processes import ServerProcess, wait_for
from tests.support.results import assert_same_results, collect, reference

MAX_MESSAGE = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, bundle_v1: Path) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("ws")
    models = root / "models"
    models.mkdir()
    shutil.copytree(bundle_v1, models / "demo-v1")
    env = {"TAD_MODEL_DIR": str(models), "TAD_MAX_WS_MESSAGE_BYTES": str(MAX_MESSAGE)}
    s = ServerProcess(env, log=root / "server.log").start()
    yield s
    s.stop()


def exchange(ws: Any, body: Any) -> dict[str, Any]:
    ws.send(orjson.dumps(body).decode())
    reply: dict[str, Any] = orjson.loads(ws.recv())
    return reply


def close_code(ws: Any) -> tuple[int | None, str]:
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=10)
    rcvd = info.value.rcvd
    return (rcvd.code, rcvd.reason) if rcvd else (None, "")


def test_points_one_or_many_per_message_come_back_in_order(
    server: ServerProcess, bundle_v1: Path
) -> None:
    x = series(300)
    results = []
    with connect(f"{server.ws}/v1/streams/ws-a/ws") as ws:
        for i in range(40):  # one bare point per message
            results.append(exchange(ws, points(x[i : i + 1], i)[0]))
        results.append(exchange(ws, points(x[40:50], 40)))  # a list of points
        for lo in range(50, 300, 25):  # {"points": [...]}
            results.append(exchange(ws, {"points": points(x[lo : lo + 25], lo)}))
    got = collect(results)
    assert got["index"].tolist() == list(range(300))
    assert_same_results(got, reference(bundle_v1, x, [*range(1, 41), *range(50, 300, 25)]))


def test_pipelined_messages_are_answered_in_order(server: ServerProcess) -> None:
    x = series(200)
    with connect(f"{server.ws}/v1/streams/ws-pipe/ws") as ws:
        for i in range(0, 200, 5):  # send everything before reading anything
            ws.send(orjson.dumps({"points": points(x[i : i + 5], i)}).decode())
        replies = [orjson.loads(ws.recv(timeout=30)) for _ in range(40)]
    assert [r["index"][0] for r in replies] == list(range(0, 200, 5))
    assert all(r["accepted"] == 5 for r in replies)


def test_multiplexed_socket(server: ServerProcess, bundle_v1: Path) -> None:
    xs = {"mx-1": series(120, seed=1), "mx-2": series(120, seed=2)}
    replies = []
    with connect(f"{server.ws}/v1/ws") as ws:
        for lo in range(0, 120, 30):
            body = {
                "streams": [
                    {"stream_id": k, "points": points(v[lo : lo + 30], lo)} for k, v in xs.items()
                ]
            }
            replies.append(exchange(ws, body))
    for i, (k, v) in enumerate(xs.items()):
        got = collect(r["results"][i] for r in replies)
        assert_same_results(got, reference(bundle_v1, v, [30, 60, 90], stream_id=k))


@pytest.mark.parametrize(
    ("path", "message", "code", "kind"),
    [
        ("/v1/streams/cc/ws", b"\x00\x01binary", 1003, "malformed"),
        ("/v1/streams/cc/ws", "{not json", 1007, "malformed"),
        ("/v1/streams/cc/ws", '{"seq": 100, "values": [1, 2]}', 1007, "channels"),
        ("/v1/streams/cc/ws", '{"seq": 100, "values": [1, 2, null, 4]}', 1007, "non_finite"),
        ("/v1/streams/cc/ws", '{"seq": 0, "values": [1, 2, 3, 4]}', 1007, "out_of_order"),
        (
            "/v1/streams/cc-new/ws",
            '{"model": "nope", "points": [{"seq": 0, "values": [1]}]}',
            1008,
            "unknown_model",
        ),
        ("/v1/ws", '{"streams": [{"stream_id": "bad id", "points": []}]}', 1007, "malformed"),
        ("/v1/streams/cc/ws", "[" + "1," * MAX_MESSAGE + "1]", 1009, None),
    ],
)
def test_refusals_close_with_a_code_and_a_reason(
    server: ServerProcess, path: str, message: str | bytes, code: int, kind: str | None
) -> None:
    httpx.post(
        f"{server.http}/v1/streams/cc/points", json={"points": [{"seq": 5, "values": [1, 2, 3, 4]}]}
    )
    with connect(f"{server.ws}{path}", max_size=None) as ws:
        ws.send(message)
        if kind is not None:  # an error frame with the details comes first
            err = orjson.loads(ws.recv(timeout=10))["error"]
            assert err["type"] == kind
        got, reason = close_code(ws)
    assert got == code and reason


def test_connection_gauge(server: ServerProcess) -> None:
    def gauge() -> float:
        text = httpx.get(f"{server.http}/metrics").text
        return float(
            next(
                line.split()[-1]
                for line in text.splitlines()
                if line.startswith("tad_websocket_connections ")
            )
        )

    base = gauge()
    with connect(f"{server.ws}/v1/ws"), connect(f"{server.ws}/v1/streams/g/ws"):
        wait_for(lambda: gauge() == base + 2, 5, "two open sockets")
    wait_for(lambda: gauge() == base, 5, "sockets closed")


def test_reload_under_load_drops_no_point_and_sighup_reloads(
    server: ServerProcess, bundle_v1: Path
) -> None:
    models = Path(server.env["TAD_MODEL_DIR"])
    x = series(20_000, anomaly=None)
    replies: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    started, stop = threading.Event(), threading.Event()

    def stream() -> None:
        try:
            with connect(f"{server.ws}/v1/streams/under-reload/ws") as ws:
                for lo in range(0, len(x), 4):
                    replies.append(exchange(ws, {"points": points(x[lo : lo + 4], lo)}))
                    started.set()
                    if stop.is_set():
                        return
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    def active() -> list[str]:
        listed = httpx.get(f"{server.http}/v1/models").json()["models"]
        return [m["version"] for m in listed if m["active"]]

    t = threading.Thread(target=stream)
    t.start()
    try:
        assert started.wait(10)
        clone_bundle(bundle_v1, models / "demo-v2", version="v2", created_at=later(1))
        reload = httpx.post(f"{server.http}/v1/models/reload").json()
        assert reload["changed"] == ["demo: v1 → v2"]
        wait_for(lambda: replies[-1]["model_version"] == "v2", 20, "v2 scoring")
        clone_bundle(bundle_v1, models / "demo-v3", version="v3", created_at=later(2))
        server.signal(signal.SIGHUP)
        wait_for(lambda: active() == ["v3"], 20, "the SIGHUP reload")
        wait_for(lambda: replies and replies[-1]["model_version"] == "v3", 20, "v3 scoring")
    finally:
        stop.set()
        t.join(60)
    assert not errors, errors
    versions = [r["model_version"] for r in replies]
    assert versions[0] == "v1" and "v2" in versions and versions[-1] == "v3"
    assert collect(replies)["index"].tolist() == list(range(4 * len(replies)))
