"""Slow, abandoned and broken connections against a real uvicorn: requests that never finish
their headers or body, WebSockets dropped mid-message or reset without a close, frames that
break the protocol, and a client that sends without ever reading. None of them stops the
service from answering everyone else promptly, none leaks a connection, a lock or memory, and
the service log stays free of errors.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.sync.client import connect

from tests.support.data import points, series
from tests.support.processes import ServerProcess, rss_bytes, wait_for

HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, bundle_v1: Path) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("connections")
    models = root / "models"
    models.mkdir()
    shutil.copytree(bundle_v1, models / "demo-v1")
    env = {"TAD_MODEL_DIR": str(models), "TAD_LOG_LEVEL": "info"}
    s = ServerProcess(env, log=root / "server.log")
    s.env["TAD_LOG_LEVEL"] = "info"
    s.start()
    yield s
    s.stop()
    log = (root / "server.log").read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-4000:]


def raw(server: ServerProcess) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return s


def reset(s: socket.socket) -> None:
    """Abandon a connection the rude way: RST, no FIN, no close frame."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def raw_ws(server: ServerProcess, path: str) -> socket.socket:
    s = raw(server)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(HANDSHAKE.format(path=path, key=key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def frame(
    opcode: int, payload: bytes, fin: bool = True, mask: bool = True, length: int = -1
) -> bytes:
    n = len(payload) if length < 0 else length
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_close(s: socket.socket) -> tuple[int, str]:
    """Read server frames until the close frame; return its code and reason."""
    buf = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        while len(buf) >= 2:
            opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
            off = 2
            if n == 126:
                n, off = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                n, off = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < off + n:
                break
            payload, buf = buf[off : off + n], buf[off + n :]
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return code, payload[2:].decode(errors="replace")
        chunk = s.recv(65536)
        if not chunk:
            return 1006, ""
        buf += chunk
    raise AssertionError("no close frame")


class Canary:
    """A well-behaved client that must keep getting prompt answers."""

    def __init__(self, server: ServerProcess, sid: str) -> None:
        self.server, self.sid = server, sid
        self.x = series(400, seed=61)
        self.sent = self.sent_ws = 0

    def check(self, slowest: float = 2.0) -> None:
        t0 = time.monotonic()
        lo = self.sent
        r = httpx.post(
            f"{self.server.http}/v1/streams/{self.sid}/points",
            json={"points": points(self.x[lo : lo + 2], lo)},
            timeout=10,
        )
        assert r.status_code == 200 and r.json()["index"] == [lo, lo + 1], r.text
        self.sent += 2
        with connect(f"{self.server.ws}/v1/streams/{self.sid}-ws/ws", open_timeout=10) as ws:
            ws.send(
                orjson.dumps(points(self.x[self.sent_ws : self.sent_ws + 1], self.sent_ws)).decode()
            )
            assert orjson.loads(ws.recv(timeout=10))["index"] == [self.sent_ws]
        self.sent_ws += 1
        assert time.monotonic() - t0 < slowest, "the canary was kept waiting"


def ws_gauge(server: ServerProcess) -> float:
    text = httpx.get(f"{server.http}/metrics").text
    line = next(ln for ln in text.splitlines() if ln.startswith("tad_websocket_connections "))
    return float(line.split()[-1])


def test_slow_and_unfinished_requests_do_not_block_others(server: ServerProcess) -> None:
    canary = Canary(server, "slow-canary")
    canary.check()
    body = orjson.dumps({"points": points(series(5))})
    head = (
        f"POST /v1/streams/slow/points HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    socks: list[socket.socket] = []
    sent = [10 + i % 40 for i in range(60)]
    try:
        for n in sent:  # headers that never end
            s = raw(server)
            s.sendall(head[:n])
            socks.append(s)
        for _ in range(60):  # a body that never comes in full
            s = raw(server)
            s.sendall(head + body[: len(body) // 2])
            socks.append(s)
        for _ in range(30):  # WebSockets stuck in the middle of a frame
            s = raw_ws(server, "/v1/streams/stuck/ws")
            s.sendall(frame(0x1, b'{"seq": 0, "values"', length=1000)[:30])
            socks.append(s)
        for _ in range(3):  # dribble one more byte of the headers now and then: a slowloris
            for i, s in enumerate(socks[:60]):
                s.sendall(head[sent[i] : sent[i] + 1])
                sent[i] += 1
            canary.check()
    finally:
        for i, s in enumerate(socks):  # walk away, half politely, half with a reset
            if i % 2:
                reset(s)
            else:
                s.close()
    canary.check()
    wait_for(lambda: ws_gauge(server) == 0, 10, "stuck WebSockets closed")
    r = httpx.get(f"{server.http}/v1/streams/slow")
    assert r.status_code == 404  # the unfinished requests wrote nothing


def test_abandoned_websockets_are_cleaned_up_and_their_streams_stay_consistent(
    server: ServerProcess,
) -> None:
    canary = Canary(server, "abandon-canary")
    x = series(300, seed=62)
    base = ws_gauge(server)
    socks = []
    for i in range(40):  # send a batch, then vanish without reading the answer
        s = raw_ws(server, f"/v1/streams/gone-{i}/ws")
        msg = orjson.dumps({"points": points(x[:50])})
        s.sendall(frame(0x1, msg))
        socks.append(s)
    wait_for(lambda: ws_gauge(server) >= base + 1, 10, "sockets open")
    for i, s in enumerate(socks):
        reset(s) if i % 2 else s.close()
    canary.check()
    wait_for(lambda: ws_gauge(server) == base, 10, "abandoned WebSockets closed")
    # whether the dropped batch was committed or not, resending it gives one consistent stream
    for i in range(40):
        r = httpx.post(
            f"{server.http}/v1/streams/gone-{i}/points", json={"points": points(x[:60])}
        ).json()
        assert r["status"].count("duplicate") in (0, 50), r["status"]
        assert r["index"][-1] == 59
    canary.check()


@pytest.mark.parametrize(
    ("name", "data", "codes"),
    [
        ("invalid UTF-8 in a text frame", frame(0x1, b'{"seq": 0, "v\xff\xfe"}'), {1007}),
        ("unmasked client frame", frame(0x1, b"{}", mask=False), {1002}),
        ("reserved opcode", frame(0x3, b"x"), {1002}),
        ("continuation without a start", frame(0x0, b"x"), {1002}),
        ("control frame too long", frame(0x9, b"x" * 200), {1002}),
        ("fragmented control frame", frame(0x9, b"x", fin=False), {1002}),
        ("frame over the size limit", frame(0x1, b"", length=1 << 30)[:14], {1009}),
        ("binary frame", frame(0x2, b"\x00\x01\x02"), {1003}),
        ("close with a bad code", frame(0x8, struct.pack("!H", 999)), {1002}),
    ],
)
def test_protocol_violations_close_with_a_code(
    server: ServerProcess, name: str, data: bytes, codes: set[int]
) -> None:
    s = raw_ws(server, "/v1/streams/proto/ws")
    try:
        s.sendall(data)
        code, reason = read_close(s)
    finally:
        s.close()
    assert code in codes, (name, code, reason)
    Canary(server, f"proto-canary-{abs(hash(name))}").check()


def test_a_client_that_never_reads_is_held_back_not_buffered(server: ServerProcess) -> None:
    """Answers are not queued without bound for a client that does not read them: once the
    socket's buffers are full the service stops reading that client (it stops scoring its
    points), and its memory stays flat; when the client reads again, everything arrives in
    order."""
    n_msgs, per = 2000, 100  # ~15 MB of answers: more than the kernel buffers take
    x = series(n_msgs * per, seed=63, anomaly=None)
    msgs = [
        orjson.dumps({"points": points(x[k * per : (k + 1) * per], k * per)}).decode()
        for k in range(n_msgs)
    ]
    pid = server.proc.pid  # type: ignore[union-attr]
    rss0 = rss_bytes(pid)

    def stored() -> int:
        r = httpx.get(f"{server.http}/v1/streams/flood")
        return int(r.json()["count"]) if r.status_code == 200 else 0

    with connect(f"{server.ws}/v1/streams/flood/ws", max_size=None) as ws:
        t = threading.Thread(target=lambda: [ws.send(m) for m in msgs], daemon=True)
        t.start()
        seen: list[int] = []

        def stalled() -> bool:
            time.sleep(0.5)
            seen.append(stored())
            return len(seen) > 1 and seen[-1] == seen[-2] > 0

        wait_for(stalled, 30, "the service to hold back")
        held = seen[-1]
        assert held < n_msgs * per, "every message was scored although no answer was read"
        grown = rss_bytes(pid) - rss0
        assert grown < 64 << 20, f"{grown / 2**20:.0f} MB held for one client"
        Canary(server, "flood-canary").check()
        replies = [orjson.loads(ws.recv(timeout=30)) for _ in range(n_msgs)]
        t.join(30)
    assert [r["index"][0] for r in replies] == list(range(0, n_msgs * per, per))
    assert stored() == n_msgs * per
