"""Hostile input, property-based, against a real uvicorn: wrong types and shapes, NaN/inf, huge
numbers, huge batches and messages, deep JSON, unicode and overlong stream ids, binary frames,
invalid frames. The answer is always a 4xx with an error body, or an error frame and a close
code with a reason — never a 5xx, a bare drop or a crash — and a stream fed in between is
unaffected (its results stay exactly the offline evaluator's).

(tests/service covers the documented refusals one by one, each naming its field; this file
throws everything else at the service; one file, ~350 lines, because every case shares the one
server and the one reference stream.)
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from service.demo import DEMO_CHANNELS
from tests.support.data import points, series
from tests.support.processes import ServerProcess
from tests.support.results import assert_replies_match, reference

MAX_BYTES = 64 * 1024
MAX_POINTS = 200
CLOSE_CODES = {1003, 1007, 1008, 1009, 1013}  # the service's documented refusals
CANARY_N = 600

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: CI is not flaky
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, bundle_v1: Path) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hostile")
    models = root / "models"
    models.mkdir()
    shutil.copytree(bundle_v1, models / "demo-v1")
    env = {
        "TAD_MODEL_DIR": str(models),
        "TAD_MAX_BODY_BYTES": str(MAX_BYTES),
        "TAD_MAX_WS_MESSAGE_BYTES": str(MAX_BYTES),
        "TAD_MAX_POINTS_PER_REQUEST": str(MAX_POINTS),
    }
    s = ServerProcess(env, log=root / "server.log").start()
    yield s
    s.stop()
    log = (root / "server.log").read_text()
    assert "Traceback" not in log and "Exception" not in log, log[-4000:]


class Canary:
    """A well-behaved stream fed a few points between hostile examples: it must keep being
    scored exactly as the offline evaluator scores it."""

    def __init__(self, server: ServerProcess, sid: str) -> None:
        self.server, self.sid = server, sid
        self.x = series(CANARY_N, seed=41)
        self.sent = 0
        self.replies: list[dict[str, Any]] = []

    def feed(self, n: int = 3) -> None:
        lo, hi = self.sent, min(self.sent + n, CANARY_N)
        if hi > lo:
            r = httpx.post(
                f"{self.server.http}/v1/streams/{self.sid}/points",
                json={"points": points(self.x[lo:hi], lo)},
                timeout=10,
            )
            assert r.status_code == 200, r.text
            self.replies.append(r.json())
            self.sent = hi

    def check(self, bundle: Path) -> None:
        want = reference(bundle, self.x[: self.sent], stream_id=self.sid)
        assert len(assert_replies_match(self.replies, want)) == self.sent


# -- strategies ------------------------------------------------------------------------------

numbers = st.one_of(
    st.floats(),  # NaN, ±inf, subnormals, ±0.0
    st.integers(),
    st.sampled_from([1e308, -1e308, 5e-324, 2**53, 2**53 + 1, 2**63, -(2**63) - 1, 10**300]),
)
leaves = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
anything = st.recursive(
    leaves,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
hostile_values = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, None, 2**63, 10**400, "1.0"]
)
channel_names = st.sampled_from([*DEMO_CHANNELS, "", "x", "températur", "__proto__", "a" * 200])
point_values = st.one_of(
    st.lists(st.one_of(numbers, leaves), max_size=7),
    st.dictionaries(channel_names, st.one_of(numbers, leaves), max_size=6),
    anything,
)
hostile_point = st.fixed_dictionaries(
    {},
    optional={
        "seq": st.one_of(st.integers(), numbers, anything),
        "timestamp": st.one_of(numbers, anything),
        "values": point_values,
        "extra": anything,
    },
)


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """Well-formed points with hostile numbers: NaN/inf, extremes, wrong channel counts or
    names, clocks going backwards or repeating, a model that may not exist."""
    n = draw(st.integers(1, 6))
    start = draw(st.one_of(st.integers(-(2**53), 2**53), st.just(0)))
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 1, 0, -1, 2**40]), min_size=n, max_size=n))
    clock = draw(st.sampled_from(["seq", "timestamp"]))
    pts, t = [], start
    for step in steps:
        t += step
        width = draw(st.sampled_from([4, 4, 4, 4, 4, 3, 5, 0]))
        row: list[Any] = [draw(st.floats(-10, 10)) for _ in range(width)]
        if width and draw(st.booleans()):
            row[draw(st.integers(0, width - 1))] = draw(hostile_values)
        if draw(st.booleans()):
            values: Any = row
        elif width == 4 and draw(st.booleans()):
            values = dict(zip(DEMO_CHANNELS, row, strict=True))
        else:
            names = draw(st.lists(channel_names, min_size=width, max_size=width, unique=True))
            values = dict(zip(names, row, strict=True))
        pts.append({clock: float(t) if clock == "timestamp" else t, "values": values})
    body: dict[str, Any] = {"points": pts}
    if draw(st.integers(0, 2)) == 0:
        body["model"] = draw(st.sampled_from(["demo", "demo", "nope", "demo/../x", ""]))
    return body


valid_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)
bodies = st.one_of(
    near_valid(),
    near_valid(),
    anything,
    st.fixed_dictionaries(
        {"points": st.lists(hostile_point, max_size=4)}, optional={"model": anything}
    ),
    st.lists(hostile_point, max_size=4),
    hostile_point,
)
multiplexed = st.fixed_dictionaries(
    {
        "streams": st.one_of(
            st.lists(
                st.builds(lambda sid, body: {"stream_id": sid, **body}, valid_ids, near_valid()),
                min_size=1,
                max_size=3,
            ),
            anything,
            st.lists(
                st.fixed_dictionaries(
                    {"stream_id": st.one_of(st.text(max_size=300), anything)},
                    optional={"points": st.lists(hostile_point, max_size=3), "model": anything},
                ),
                max_size=3,
            ),
        )
    }
)
stream_ids = st.one_of(
    valid_ids,
    valid_ids,
    valid_ids,
    st.text(min_size=1, max_size=40),  # unicode, slashes, percent signs, control characters
    st.text(alphabet="a", min_size=129, max_size=4000),  # overlong
)


def valid_points(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"seq": start + i, "values": [0.1, 0.2, 0.3, 0.4]} for i in range(n)]


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    """Bytes a JSON serializer would never write: NaN/Infinity, huge literals, deep nesting,
    truncation, oversized batches and bodies, random bytes."""
    kind = draw(
        st.sampled_from(
            ["near"] * 4 + ["json", "deep", "digits", "truncated", "batch", "big", "bytes"]
        )
    )
    if kind == "near":
        return json.dumps(draw(st.one_of(near_valid(), multiplexed))).encode()
    if kind == "json":  # the stdlib writes NaN, Infinity and arbitrary big integers
        return json.dumps(draw(bodies)).encode()
    if kind == "deep":
        depth = draw(st.integers(1, 60_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = opener * depth + "1" + closer * depth
        return draw(st.sampled_from([inner, '{"points": [' + inner + "]}"])).encode()
    if kind == "digits":
        digits = "9" * draw(st.integers(300, 20_000))
        field = draw(st.sampled_from(["seq", "timestamp", "value"]))
        if field == "value":
            return ('{"points": [{"seq": 1, "values": [1, 2, 3, ' + digits + "]}]}").encode()
        return ('{"points": [{"' + field + '": ' + digits + ', "values": [1,2,3,4]}]}').encode()
    if kind == "truncated":
        whole = orjson.dumps({"points": valid_points(5)})
        return whole[: draw(st.integers(0, len(whole) - 1))]
    if kind == "batch":
        return orjson.dumps({"points": valid_points(draw(st.integers(MAX_POINTS + 1, 600)))})
    if kind == "big":
        return b'{"points": [' + b" " * draw(st.integers(MAX_BYTES, 3 * MAX_BYTES)) + b"]}"
    return draw(st.binary(max_size=2000))


def assert_refusal(r: httpx.Response) -> None:
    """A documented 4xx with the service's error body, or a success."""
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400:
        err = r.json()["error"]
        assert err["type"] and err["message"], r.text


def ws_outcome(ws: Any) -> tuple[dict[str, Any] | None, int | None, str]:
    """(reply, None, "") if the message was answered, else (error frame or None, code, reason)."""
    try:
        first = orjson.loads(ws.recv(timeout=20))
    except ConnectionClosed as exc:
        rcvd = exc.rcvd
        return None, (rcvd.code if rcvd else None), (rcvd.reason if rcvd else "")
    if "error" not in first:
        return first, None, ""
    try:
        ws.recv(timeout=20)
    except ConnectionClosed as exc:
        rcvd = exc.rcvd
        return first, (rcvd.code if rcvd else None), (rcvd.reason if rcvd else "")
    raise AssertionError(f"error frame {first} not followed by a close")


def assert_ws_refusal(outcome: tuple[dict[str, Any] | None, int | None, str]) -> None:
    reply, code, reason = outcome
    if code is None:
        assert reply is not None and "error" not in reply
        return
    assert code in CLOSE_CODES, (code, reason, reply)
    assert reason, (code, reply)
    if reply is not None:
        assert reply["error"]["type"] and reply["error"]["message"]


# -- HTTP ------------------------------------------------------------------------------------


def test_hostile_http_bodies_and_stream_ids(server: ServerProcess, bundle_v1: Path) -> None:
    canary = Canary(server, "canary-http")
    client = httpx.Client(base_url=server.http, timeout=20)

    @FUZZ
    @given(
        sid=stream_ids,
        body=raw_bodies(),
        target=st.sampled_from(["stream", "stream", "batch"]),
        content_type=st.sampled_from(
            ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
        ),
    )
    def check(sid: str, body: bytes, target: str, content_type: str) -> None:
        path = f"/v1/streams/{quote(sid, safe='')}/points" if target == "stream" else "/v1/points"
        headers = {"content-type": content_type} if content_type else {}
        assert_refusal(client.post(path, content=body, headers=headers))
        canary.feed()

    check()

    @FUZZ
    @given(body=multiplexed)
    def check_batch(body: Any) -> None:
        assert_refusal(client.post("/v1/points", content=json.dumps(body).encode()))
        canary.feed()

    check_batch()
    canary.check(bundle_v1)
    assert httpx.get(f"{server.http}/readyz").status_code == 200


# -- WebSocket -------------------------------------------------------------------------------


@st.composite
def ws_messages(draw: st.DrawFn) -> str | bytes:
    kind = draw(st.sampled_from(["near"] * 3 + ["json", "raw", "binary", "big", "batch"]))
    if kind == "near":
        return json.dumps(draw(st.one_of(near_valid(), multiplexed)))
    if kind == "binary":
        return draw(st.binary(min_size=0, max_size=2000))
    if kind == "big":
        return "[" + "1," * draw(st.integers(MAX_BYTES // 2, MAX_BYTES)) + "1]"
    if kind == "batch":
        return orjson.dumps(valid_points(draw(st.integers(MAX_POINTS + 1, 400)))).decode()
    if kind == "raw":
        return draw(raw_bodies()).decode("utf-8", errors="replace")[: 2 * MAX_BYTES]
    return json.dumps(draw(st.one_of(bodies, multiplexed)))


def test_hostile_websocket_messages_and_paths(server: ServerProcess, bundle_v1: Path) -> None:
    canary = Canary(server, "canary-ws")
    fresh = iter(range(10**9))

    @FUZZ
    @given(
        sid=stream_ids,
        message=ws_messages(),
        multiplexed_socket=st.booleans(),
    )
    def check(sid: str, message: str | bytes, multiplexed_socket: bool) -> None:
        # valid ids get a fresh stream each time, so "out of order" is not all we test
        sid = f"{sid}-{next(fresh)}" if len(sid) < 100 and sid.isascii() else sid
        path = "/v1/ws" if multiplexed_socket else f"/v1/streams/{quote(sid, safe='')}/ws"
        try:
            ws = connect(f"{server.ws}{path}", max_size=None, open_timeout=20)
        except InvalidStatus as exc:  # a path no socket route takes: refused at the handshake
            assert 400 <= exc.response.status_code < 500, exc
        else:
            with ws:
                with contextlib.suppress(ConnectionClosed):  # refused mid-send: read the close
                    ws.send(message)
                assert_ws_refusal(ws_outcome(ws))
        canary.feed()

    check()
    canary.check(bundle_v1)
    assert httpx.get(f"{server.http}/readyz").status_code == 200
