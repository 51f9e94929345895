"""Bad input over HTTP: every refusal is a documented 4xx naming the field, counted by reason,
and leaves accepted state and other streams untouched."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.schemas import ErrorResponse
from tests.support.data import points, series

JSON = {"content-type": "application/json"}


def post_raw(client: Any, body: bytes, sid: str = "s") -> Any:
    return client.post(f"/v1/streams/{sid}/points", content=body, headers=JSON)


def rejected(client: Any, reason: str) -> float:
    prefix = f'tad_points_rejected_total{{reason="{reason}"}} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize(
    ("body", "status", "kind", "field"),
    [
        (b"{not json", 400, "malformed", "body"),
        (b"[" * 50_000, 400, "malformed", "body"),
        (b'{"points": "x"}', 422, "malformed", "points"),
        (b'{"points": []}', 422, "malformed", "points"),
        (b'{"points": [{"seq": 1}]}', 422, "malformed", "points[0].values"),
        (b'{"points": [{"values": [1,2,3,4]}]}', 422, "malformed", "points[0]"),
        (
            b'{"points": [{"seq": 1, "timestamp": 1.0, "values": [1,2,3,4]}]}',
            422,
            "malformed",
            "points[0]",
        ),
        (
            b'{"points": [{"timestamp": NaN, "values": [1,2,3,4]}]}',
            422,
            "malformed",
            "points[0].timestamp",
        ),
        (
            b'{"points": [{"seq": 1, "values": [1,2,"3",4]}]}',
            422,
            "malformed",
            "points[0].values[2]",
        ),
        (
            b'{"points": [{"seq": 1, "values": [true,2,3,4]}]}',
            422,
            "malformed",
            "points[0].values[0]",
        ),
        (
            b'{"points": [{"seq": 1, "values": [1,2,3,4], "extra": 1}]}',
            422,
            "malformed",
            "points[0].extra",
        ),
        (
            b'{"points": [{"seq": 1' + b"0" * 400 + b', "values": [1,2,3,4]}]}',
            422,
            "malformed",
            "points[0].seq",
        ),
        (b'{"points": [{"seq": 1, "values": [1,2,3]}]}', 422, "channels", "points[0].values"),
        (b'{"points": [{"seq": 1, "values": [1,2,3,4,5]}]}', 422, "channels", "points[0].values"),
        (
            b'{"points": [{"seq": 1, "values": {"temperature": 1, "pressure": 2, "flow": 3}}]}',
            422,
            "channels",
            "points[0].values.vibration",
        ),
        (
            b'{"points": [{"seq": 1, "values": {"temperature": 1, "pressure": 2, "flow": 3, '
            b'"vibration": 4, "rpm": 5}}]}',
            422,
            "channels",
            "points[0].values.rpm",
        ),
        (
            b'{"points": [{"seq": 1, "values": [1, null, 3, 4]}]}',
            422,
            "non_finite",
            "points[0].values.pressure",
        ),
        (
            b'{"points": [{"seq": 1, "values": [1, 2, Infinity, 4]}]}',
            422,
            "non_finite",
            "points[0].values.flow",
        ),
        (
            b'{"points": [{"seq": 1, "values": [1, 2, 3, 1e999]}]}',
            422,
            "non_finite",
            "points[0].values.vibration",
        ),
    ],
)
def test_bad_points_get_a_4xx_naming_the_field(
    client: Any, body: bytes, status: int, kind: str, field: str
) -> None:
    good = post_raw(client, b'{"points": [{"seq": 0, "values": [0.1, 0.2, 0.3, 0.4]}]}')
    assert good.status_code == 200
    before = rejected(client, kind)
    r = post_raw(client, body)
    assert r.status_code == status, r.text
    err = ErrorResponse.model_validate(r.json()).error
    assert (err.type, err.field) == (kind, field), err
    assert rejected(client, kind) > before
    assert client.get("/v1/streams/s").json()["count"] == 1


def test_oversized_bodies_and_batches_are_413(make_client: Any) -> None:
    c = make_client(max_body_bytes=4096, max_points_per_request=20)
    pts = points(series(100))
    r = c.post("/v1/streams/s/points", json={"points": pts})
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"
    r = c.post("/v1/streams/s/points", json={"points": pts[:21]})
    assert r.status_code == 413 and r.json()["error"]["field"] == "points"
    chunks = (b'{"points": [' + b" " * 1000 for _ in range(10))  # chunked, no Content-Length
    r = c.post("/v1/streams/s/points", content=chunks, headers=JSON)
    assert r.status_code == 413
    assert rejected(c, "too_large") == 1 + 21 + 1  # bodies count once, a batch per point
    assert c.post("/v1/streams/s/points", json={"points": pts[:20]}).status_code == 200


def test_too_many_streams_in_one_request_are_413_and_nothing_is_committed(
    make_client: Any,
) -> None:
    """Issue 25: one multi-stream request is one atomic commit; 80,000 streams held Redis and
    the event loop for seconds, so a request names at most TAD_MAX_STREAMS_PER_REQUEST."""
    c = make_client(max_streams_per_request=5)
    pts = points(series(2))
    body = {"streams": [{"stream_id": f"s{i}", "points": pts} for i in range(6)]}
    r = c.post("/v1/points", json=body)
    err = r.json()["error"]
    assert r.status_code == 413 and err["field"] == "streams"
    assert "TAD_MAX_STREAMS_PER_REQUEST" in err["message"]
    assert c.get("/v1/streams/s0").status_code == 404  # all or nothing: none was created
    with c.websocket_connect("/v1/ws") as ws:
        ws.send_text(json.dumps(body))
        assert ws.receive_json()["error"]["field"] == "streams"
    body["streams"] = body["streams"][:5]
    assert c.post("/v1/points", json=body).status_code == 200


def test_far_too_many_streams_are_refused_before_the_body_is_parsed(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing 80,000 streams held the event loop 0.4 s just to refuse them."""
    from service.routes import points as route

    parsed: list[int] = []
    real = route.batch_points_async

    async def counted(body: bytes) -> Any:
        parsed.append(1)
        return await real(body)

    monkeypatch.setattr(route, "batch_points_async", counted)
    c = make_client(max_streams_per_request=5)
    pts = points(series(1))
    named = [{"stream_id": "stream_id", "model": "stream_id", "points": pts}] * 5
    c.post("/v1/points", json={"streams": named})  # "stream_id" 15 times, 5 streams: parsed
    assert parsed == [1]
    many = {"streams": [{"stream_id": f"s{i}", "points": pts} for i in range(16)]}
    r = c.post("/v1/points", json=many)
    assert r.status_code == 413 and r.json()["error"]["field"] == "streams", r.text
    assert parsed == [1]  # refused from the count


def test_hold_policy_replaces_non_finite_values_with_the_last_value(make_client: Any) -> None:
    held, explicit = make_client(nonfinite_policy="hold"), make_client()
    x = series(40)
    gappy = points(x)
    gappy[30]["values"][1] = None  # dropout: held at row 29's value
    gappy[31]["values"] = dict(
        zip(["temperature", "pressure", "flow", "vibration"], [float("nan")] * 4, strict=True)
    )
    filled = x.copy()
    filled[30, 1] = x[29, 1]
    filled[31] = x[30]
    filled[31, 1] = x[29, 1]
    a = held.post(
        "/v1/streams/s/points", content=_dumps_nan({"points": gappy}), headers=JSON
    ).json()
    b = explicit.post("/v1/streams/s/points", json={"points": points(filled)}).json()
    assert a["held"] == 5 and a["score"] == b["score"]
    assert "tad_values_held_total 5.0" in held.get("/metrics").text
    r = held.post(
        "/v1/streams/new/points", json={"points": [{"seq": 0, "values": [None, 1, 2, 3]}]}
    )
    assert r.status_code == 422 and "no previous value" in r.json()["error"]["message"]


def test_bad_stream_ids_and_unknown_routes(client: Any) -> None:
    r = client.post("/v1/streams/bad%20id/points", json={"points": points(series(1))})
    assert r.status_code == 422 and r.json()["error"]["field"] == "stream_id"
    r = client.post(f"/v1/streams/{'x' * 200}/points", json={"points": points(series(1))})
    assert r.status_code == 422
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "http"
    r = client.post("/v1/streams/s/points", content=b"x", headers={"content-length": "abc"})
    assert r.status_code == 400


def test_bad_input_on_one_stream_leaves_others_untouched(client: Any) -> None:
    x = series(60)
    client.post("/v1/streams/a/points", json={"points": points(x[:30])})
    for body in (b"{", b'{"points": [{"seq": 30, "values": [1]}]}'):
        assert post_raw(client, body, "a").status_code >= 400
    r = client.post("/v1/streams/b/points", json={"points": points(x)})
    assert r.status_code == 200
    r = client.post("/v1/streams/a/points", json={"points": points(x[30:], 30)})
    assert r.json()["index"][0] == 30


def _dumps_nan(obj: Any) -> bytes:
    import json

    return json.dumps(obj).encode()  # the stdlib writes NaN, as many sensor gateways do
