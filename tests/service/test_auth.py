"""API keys: required everywhere but the probes, constant-time, never logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from service import auth
from tests.support.data import points, series

KEYS = ("sekrit-alpha-4711", "sekrit-beta-0815")


@pytest.fixture
def secured(make_client: Any) -> Any:
    return make_client(api_keys=",".join(KEYS))


def test_http_needs_a_configured_key(secured: Any) -> None:
    body = {"points": points(series(3))}
    for path in ("/v1/models", "/v1/alarms", "/metrics", "/v1/streams"):
        r = secured.get(path)
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized", path
        assert secured.get(path, headers={"X-API-Key": "nope"}).status_code == 401
    assert secured.post("/v1/streams/s/points", json=body).status_code == 401
    assert secured.get("/v1/streams/s").status_code == 401  # before the 404: nothing leaks
    ok = secured.post("/v1/streams/s/points", json=body, headers={"X-API-Key": KEYS[1]})
    assert ok.status_code == 200
    prom = secured.get("/metrics", headers={"Authorization": f"Bearer {KEYS[0]}"})
    assert prom.status_code == 200
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200


def test_websocket_needs_a_key_in_header_or_query(secured: Any) -> None:
    with secured.websocket_connect("/v1/streams/w/ws") as ws:
        assert ws.receive_json()["error"]["type"] == "unauthorized"
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json()
        assert info.value.code == 1008
    msg = {"points": points(series(2))}
    with secured.websocket_connect(f"/v1/streams/w/ws?api_key={KEYS[0]}") as ws:
        ws.send_json(msg)
        assert ws.receive_json()["accepted"] == 2
    with secured.websocket_connect("/v1/ws", headers={"X-API-Key": KEYS[1]}) as ws:
        ws.send_json({"streams": [{"stream_id": "w2", **msg}]})
        assert ws.receive_json()["results"][0]["accepted"] == 2


def test_every_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    keys = [k.encode() for k in KEYS] + [b"third"]
    assert auth.key_matches(keys, KEYS[0]) is True
    assert len(calls) == 3, "no early exit on the first match"
    assert auth.key_matches(keys, "wrong") is False and auth.key_matches(keys, None) is False


def test_keys_are_never_logged_or_echoed(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    c = make_client(api_keys=",".join(KEYS), log_level="debug")
    replies = [
        c.get("/v1/models", headers={"X-API-Key": KEYS[0] + "x"}).text,
        c.get("/v1/models", headers={"X-API-Key": KEYS[1]}).text,
        repr(c.app.state.services.settings),
    ]
    with c.websocket_connect(f"/v1/ws?api_key={KEYS[0]}x") as ws:
        replies.append(str(ws.receive_json()))
    text = caplog.text + "".join(replies)
    assert all(k not in text for k in KEYS)


def test_a_real_server_does_not_log_query_keys(model_dir: Any, tmp_path: Any) -> None:
    from websockets.sync.client import connect

    from tests.support.processes import ServerProcess

    log = tmp_path / "server.log"
    env = {"TAD_MODEL_DIR": str(model_dir), "TAD_API_KEYS": ",".join(KEYS)}
    server = ServerProcess(env, log=log)
    server.env["TAD_LOG_LEVEL"] = "info"
    server.start()
    try:
        with connect(f"{server.ws}/v1/streams/q/ws?api_key={KEYS[0]}") as ws:
            ws.send('{"seq": 0, "values": [1, 2, 3, 4]}')
            assert '"accepted":1' in ws.recv(timeout=10)
        import httpx

        httpx.get(f"{server.http}/v1/models?api_key={KEYS[1]}", headers={"X-API-Key": KEYS[1]})
    finally:
        server.stop()
    text = log.read_text()
    assert "WebSocket /v1/streams/q/ws?api_key=***" in text
    assert all(k not in text for k in KEYS)
