"""Scale-out on loopback: three service replicas (the compose `service` command and environment)
sharing one redis-server behind HAProxy with deploy/haproxy/haproxy.cfg (`docker compose up
--scale service=3`). Requests of one stream spread over the replicas give exactly the results of
one process; SIGKILL of a replica in the middle of a WebSocket stream and of HTTP traffic loses
nothing (clients resend, the service answers resends as duplicates); the restarted replica
takes traffic again.
"""

from __future__ import annotations

import functools
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

from service.demo import DEMO_CHANNELS
from service.replay import ReplayData, replay
from tests.deploy.stack import (
    Localizer,
    dockerfile_stages,
    haproxy_config,
    http_ok,
    image_paths,
    load_compose,
    require_binary,
    run_healthcheck,
    service_healthcheck,
    service_process,
    wait_up,
)
from tests.support.data import points, series
from tests.support.processes import ManagedProcess, free_port, wait_for
from tests.support.results import COLUMNS, assert_same_results, collect, reference

REPLICAS = 3
CUTS = [10, 23, 24, 60, 130, 200, 205, 215, 260, 330]


@dataclass
class Cluster:
    replicas: list[ManagedProcess]
    ports: list[int]
    proxy_port: int
    bundle: Path
    compose: dict[str, Any]

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.proxy_port}"


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, bundle_v1: Path, redis_url: str
) -> Iterator[Cluster]:
    haproxy = require_binary("haproxy")
    tmp = tmp_path_factory.mktemp("scale")
    models = tmp / "volumes" / "models"  # one volume shared by every replica
    models.mkdir(parents=True)
    shutil.copytree(bundle_v1, models / "demo-v1")
    user_env = {
        "GRAFANA_ADMIN_PASSWORD": "unused",
        "TAD_REDIS_PREFIX": f"scale{uuid.uuid4().hex[:8]}:",
    }
    compose = load_compose(user_env)
    redis = urlparse(redis_url)
    loc = Localizer(
        {
            **image_paths(dockerfile_stages()["runtime"]),
            "/models": models,
            "/opt/tad/seed-models": tmp / "no-seed",
        },
        {"redis:6379": f"{redis.hostname}:{redis.port}"},
    )
    ports = [free_port() for _ in range(REPLICAS)]
    replicas = [
        service_process(compose, tmp, port, loc, tmp / f"replica-{i}.log")
        for i, port in enumerate(ports)
    ]
    proxy_port = free_port()
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(haproxy_config(ports, proxy_port))
    proxy = ManagedProcess("proxy", [haproxy, "-W", "-db", "-f", str(cfg)], tmp / "proxy.log")
    try:
        for r in replicas:
            r.start()
        for r, port in zip(replicas, ports, strict=True):
            wait_up(r, functools.partial(http_ok, f"http://127.0.0.1:{port}/readyz"), 90, "replica")
        proxy.start()
        wait_up(
            proxy,
            lambda: all(_server_up(proxy_port, p) for p in ports),
            20,
            "haproxy sending to every replica",
        )
        yield Cluster(replicas, ports, proxy_port, bundle_v1, compose)
    finally:
        proxy.stop()
        for r in replicas:
            r.stop()


def _server_up(proxy_port: int, port: int) -> bool:
    """A request through the proxy reaches a healthy server (HAProxy's checks have run)."""
    return http_ok(f"http://127.0.0.1:{proxy_port}/readyz") and http_ok(
        f"http://127.0.0.1:{port}/readyz"
    )


def accepted_total(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    m = re.search(r"^tad_points_accepted_total (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def ws_connections(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    m = re.search(r"^tad_websocket_connections (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def post(url: str, body: Mapping[str, Any], tries: int = 50) -> dict[str, Any]:
    """POST on a new connection each time (so the proxy balances every request); resend on a
    broken connection or a 502/503/504, as a client of a scaled service must."""
    for _ in range(tries):
        try:
            r = httpx.post(url, json=body, headers={"Connection": "close"}, timeout=10)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if r.status_code in (502, 503, 504):
            time.sleep(0.05)
            continue
        assert r.status_code == 200, r.text
        reply: dict[str, Any] = r.json()
        return reply
    raise AssertionError(f"no answer from {url} after {tries} tries")


def assert_partial(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    """The results a client holds equal the reference at their indices (points answered as
    duplicates after a crash have their results in the store, not in a reply)."""
    idx = np.asarray(got["index"], dtype=np.int64)
    assert len(np.unique(idx)) == len(idx), "no point answered twice"
    for c in COLUMNS:
        np.testing.assert_array_equal(
            np.asarray(got[c], np.float64), np.asarray(want[c], np.float64)[idx], err_msg=c
        )


def assert_history(http: str, stream: str, want: Mapping[str, Any], n: int) -> None:
    """Nothing lost, nothing counted twice: count, alarm history, final evidence."""
    info = httpx.get(f"{http}/v1/streams/{stream}").json()
    assert info["count"] == n, info
    assert info["accumulated"] == pytest.approx(float(want["accumulated"][-1]), abs=0, rel=0)
    history = httpx.get(f"{http}/v1/streams/{stream}/alarms").json()["events"]
    assert_same_results({**{c: want[c] for c in COLUMNS}, "events": history}, want)


def chunked(n: int, size: int) -> Sequence[tuple[int, int]]:
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def test_a_stream_spread_over_replicas_equals_one_process(cluster: Cluster) -> None:
    x = series(400)
    bounds = [0, *CUTS, len(x)]
    before = [accepted_total(p) for p in cluster.ports]
    spread = [
        post(f"{cluster.http}/v1/streams/spread/points", {"points": points(x[lo:hi], lo)})
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    served = [accepted_total(p) - b for p, b in zip(cluster.ports, before, strict=True)]
    assert all(s > 0 for s in served), f"every replica took part: {served}"
    assert sum(served) == len(x)

    one = f"http://127.0.0.1:{cluster.ports[0]}"  # the same stream on one process, directly
    single = [
        post(f"{one}/v1/streams/single/points", {"points": points(x[lo:hi], lo)})
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ]
    want = reference(cluster.bundle, x, CUTS)
    assert want["events"], "the fault opens an alarm"
    assert_same_results(collect(spread), collect(single))
    assert_same_results(collect(spread), want)
    for replica in cluster.ports:  # every replica sees the same, complete alarm history
        assert_history(f"http://127.0.0.1:{replica}", "spread", want, len(x))


def test_killing_a_replica_mid_stream_loses_nothing(cluster: Cluster) -> None:
    x_ws, x_http = series(1500, seed=5), series(400, seed=6)
    ws_replies: list[dict[str, Any]] = []
    http_replies: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def http_client() -> None:
        try:
            for lo, hi in chunked(len(x_http), 10):
                body = {"points": points(x_http[lo:hi], lo)}
                http_replies.append(post(f"{cluster.http}/v1/streams/http-kill/points", body))
                time.sleep(0.01)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            done.set()

    http_thread = threading.Thread(target=http_client)
    summary_box: list[Any] = []

    def ws_client() -> None:
        try:
            summary_box.append(
                replay(
                    cluster.ws,
                    "ws-kill",
                    ReplayData(DEMO_CHANNELS, x_ws, None),
                    batch=5,  # as fast as answered: a replica is always mid-request
                    echo=lambda _: None,
                    on_result=ws_replies.append,
                )
            )
        except BaseException as exc:
            errors.append(exc)

    ws_thread = threading.Thread(target=ws_client)
    ws_thread.start()
    http_thread.start()
    wait_for(lambda: len(ws_replies) >= 20 or errors, 30, "the WebSocket stream under way")
    assert not errors, errors
    holder = [i for i, p in enumerate(cluster.ports) if ws_connections(p) >= 1]
    assert len(holder) == 1, holder
    victim = cluster.replicas[holder[0]]
    victim.kill9()  # mid-stream: the socket is open, HTTP requests are in flight
    killed_at = len(ws_replies)

    ws_thread.join(timeout=60)
    http_thread.join(timeout=60)
    assert not ws_thread.is_alive() and not http_thread.is_alive() and done.is_set()
    assert not errors, errors
    (summary,) = summary_box
    assert killed_at < len(x_ws) // 5, "the kill happened mid-stream"
    assert summary.reconnects >= 1
    assert summary.accepted + summary.duplicates == len(x_ws)
    assert summary.duplicates in (0, 5), "at most the one unanswered batch was resent"

    # whether the killed replica had committed its last batch or not is a race (both happen);
    # an answer lost on the way is the same case: resend the last batch, through the proxy
    n = len(x_ws)
    again = post(
        f"{cluster.http}/v1/streams/ws-kill/points", {"points": points(x_ws[n - 5 :], n - 5)}
    )
    assert again["status"] == ["duplicate"] * 5 and again["accepted"] == 0, again

    survivor = f"http://127.0.0.1:{cluster.ports[(holder[0] + 1) % REPLICAS]}"
    want_ws = reference(cluster.bundle, x_ws, range(5, len(x_ws), 5))
    assert_partial(collect(ws_replies), want_ws)
    assert_history(survivor, "ws-kill", want_ws, len(x_ws))
    want_http = reference(cluster.bundle, x_http, range(10, len(x_http), 10))
    assert_partial(collect(http_replies), want_http)
    assert_history(survivor, "http-kill", want_http, len(x_http))
    assert want_ws["events"] and want_http["events"]

    # the orchestrator restarts it (restart: unless-stopped); the proxy's health checks bring it
    # back into rotation
    port = cluster.ports[holder[0]]
    victim.start()
    wait_up(victim, lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 60, "restarted replica")
    hc = service_healthcheck(cluster.compose)
    assert run_healthcheck(hc, victim.env) == 0
    y = series(300, seed=8)
    sent = 0

    def restarted_serves() -> bool:
        nonlocal sent
        lo = sent
        post(f"{cluster.http}/v1/streams/after/points", {"points": points(y[lo : lo + 1], lo)})
        sent += 1
        return accepted_total(port) > 0

    wait_for(restarted_serves, 30, "the restarted replica taking requests again")
    assert sent < len(y)
