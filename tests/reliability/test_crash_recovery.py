"""Crash recovery: the service is killed with SIGKILL at random points of a replayed stream,
several times, and restarted on the same port (as an orchestrator would). Clients resume from
their last acknowledged point. Whatever the kill interrupted, nothing acknowledged is lost,
nothing is counted twice, every result delivered equals the uninterrupted run's, and the stored
alarm history is exactly the uninterrupted run's.

What a crash can cost a client: the answer to the one request in flight. If the service had
committed it before dying, the resend is acknowledged as `duplicate` and its per-point results
are not sent again; its alarm events are in the stream's alarm history, which is checked here.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service.demo import DEMO_CHANNELS
from service.replay import ReplayData, replay
from tests.support.data import points, series
from tests.support.processes import ServerProcess
from tests.support.results import assert_history, assert_replies_match, event_fields, reference

N = 1500
FAULTS = ((300, 340), (900, 950))
HTTP_STREAMS = ("h-0", "h-1", "h-2")


def faulty(n: int, seed: int) -> np.ndarray:
    """The demo series with the demo fault on every span of FAULTS (two alarms)."""
    x = series(n, seed=seed, anomaly=None)
    for a, b in FAULTS:
        x[a:b, 1] += 1.5
        x[a:b, 2] -= 1.5
        x[a:b, 3] *= 3.0
    return x


class HttpResender:
    """POST /v1/points for several streams at once, resending the same request until it is
    answered (connection refused or reset while the service is down)."""

    def __init__(self, base: str, data: dict[str, np.ndarray], batch: int) -> None:
        self.base, self.data, self.batch = base, data, batch
        self.replies: list[dict[str, Any]] = []
        self.resends = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            n = len(next(iter(self.data.values())))
            for lo in range(0, n, self.batch):
                hi = min(lo + self.batch, n)
                body = {
                    "streams": [
                        {"stream_id": sid, "points": points(x[lo:hi], lo)}
                        for sid, x in self.data.items()
                    ]
                }
                self.replies.append(self._until_answered(body))
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _until_answered(self, body: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.post(f"{self.base}/v1/points", json=body, timeout=10)
                if r.status_code == 200:
                    reply: dict[str, Any] = r.json()
                    return reply
                assert r.status_code == 503, r.text  # only "not now" may happen here
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not come back"
            self.resends += 1
            time.sleep(0.05)


def until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll tightly (a replayed stream moves a few points a millisecond)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.0005)


def test_random_kill_9_points_lose_nothing_and_change_nothing(
    model_dir: Path, redis_url: str, redis_prefix: str, bundle_v1: Path, tmp_path: Path
) -> None:
    rng = random.Random(20260107)
    x_ws = faulty(N, seed=21)
    x_http = {sid: faulty(N // 3, seed=22 + i) for i, sid in enumerate(HTTP_STREAMS)}
    want_ws = reference(bundle_v1, x_ws, stream_id="ws")
    want_http = {sid: reference(bundle_v1, x, stream_id=sid) for sid, x in x_http.items()}
    opened = sum(e.kind == "opened" for e in want_ws["events"])
    assert opened >= 2, "alarms open and close along the replayed stream"

    # kill points, as acknowledged-point counts: random, one inside each fault, and a jitter of a
    # few milliseconds so the kill lands before, during or after a request's commit
    kill_at = sorted([*rng.sample(range(40, N - 100, 50), 3), *(a + 10 for a, _ in FAULTS)])
    env = {
        "TAD_MODEL_DIR": str(model_dir),
        "TAD_REDIS_URL": redis_url,
        "TAD_REDIS_PREFIX": redis_prefix,
    }
    server = ServerProcess(env, log=tmp_path / "server.log").start()
    ws_replies: list[dict[str, Any]] = []
    summary: list[Any] = []
    errors: list[BaseException] = []

    def ws_client() -> None:
        try:
            data = ReplayData(DEMO_CHANNELS, x_ws, None)
            summary.append(
                replay(
                    server.ws + "/v1/streams/ws/ws",
                    "ws",
                    data,
                    batch=5,
                    echo=lambda _: None,
                    retries=40,
                    on_result=ws_replies.append,
                )
            )
        except BaseException as exc:
            errors.append(exc)

    http = HttpResender(server.http, x_http, batch=7)
    threads = [threading.Thread(target=ws_client), threading.Thread(target=http.run)]
    for t in threads:
        t.start()
    kills: list[int] = []

    def acked() -> int:
        return sum(r["accepted"] + r["duplicates"] for r in ws_replies)

    try:
        for at in kill_at:
            until(lambda at=at: acked() >= at or bool(errors), f"{at} points acknowledged")
            assert not errors, errors
            time.sleep(rng.uniform(0, 0.004))
            kills.append(acked())
            server.kill9()
            server.start()  # same port: clients reconnect to where they were
            until(lambda: acked() > kills[-1] or bool(errors), "the client resuming")
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors
        assert http.error is None, http.error

        # kills happened mid-stream, and the client had to resume after each
        assert len(kills) == len(kill_at) and max(kills) < N
        (ws_summary,) = summary
        assert ws_summary.reconnects >= len(kill_at)
        assert ws_summary.accepted + ws_summary.duplicates == N

        # every result delivered equals the uninterrupted run; the only gaps are resent batches
        # the dead process had committed (acknowledged as duplicates, not scored twice)
        scored = assert_replies_match(ws_replies, want_ws)
        assert len(scored) == ws_summary.accepted
        assert N - len(scored) == ws_summary.duplicates <= 5 * len(kill_at)
        history = httpx.get(f"{server.http}/v1/streams/ws/alarms").json()["events"]
        assert_history(history, want_ws)
        delivered = [event_fields(e) for r in ws_replies for e in r["events"]]
        assert all(e in [event_fields(h) for h in history] for e in delivered)
        info = httpx.get(f"{server.http}/v1/streams/ws").json()
        assert info["count"] == N and info["alarms_opened"] == opened
        assert info["accumulated"] == float(want_ws["accumulated"][-1])

        # the multi-stream request committed all its streams or none of them, across every kill
        for reply in http.replies:
            statuses = {tuple(r["status"]) for r in reply["results"]}
            assert len(statuses) == 1, reply
        for i, sid in enumerate(HTTP_STREAMS):
            replies = [reply["results"][i] for reply in http.replies]
            got = assert_replies_match(replies, want_http[sid])
            dup = sum(r["duplicates"] for r in replies)
            assert len(got) + dup == N // 3
            assert_history(
                httpx.get(f"{server.http}/v1/streams/{sid}/alarms").json()["events"],
                want_http[sid],
            )
            assert httpx.get(f"{server.http}/v1/streams/{sid}").json()["count"] == N // 3
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]
