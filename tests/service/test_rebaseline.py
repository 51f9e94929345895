"""Re-baseline: an operator tells a stream its current behaviour is the new normal; the shift
is persisted with the stream's state and survives a restart on a real redis-server."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from detector.bundle import load_bundle
from detector.runtime import online_detector
from tests.support.data import points, series
from tests.support.processes import ServerProcess


def shifted(n: int) -> np.ndarray:
    """The demo series with a persistent change from row 200 on: vibration six times as large
    (tripled, it no longer alarms at all under the running median's h: issue 23)."""
    x = series(n, anomaly=None)
    x[200:, 3] *= 6.0
    return x


def post(server: ServerProcess, stream: str, x: np.ndarray, lo: int, hi: int) -> dict:
    r = httpx.post(
        f"{server.http}/v1/streams/{stream}/points", json={"points": points(x[lo:hi], lo)}
    )
    assert r.status_code == 200, r.text
    return r.json()


def in_process(bundle: Path, x: np.ndarray, rebaseline: int | None) -> dict:
    """Results of rows 400.. from the core alone, with or without a re-baseline at row 400."""
    det = online_detector(load_bundle(bundle), "cpu")
    st = det.new_state("pump")
    det.step(st, x[:400], np.arange(400.0))
    if rebaseline is not None:
        det.rebaseline(st, rebaseline)
    r = det.step(st, x[400:], np.arange(400.0, len(x)))
    return {"accumulated": r.accumulated, "alarmed": int(r.alarm.sum())}


def test_rebaseline_survives_a_restart_on_redis(
    redis_env: dict[str, str], bundle_v1: Path, tmp_path: Path
) -> None:
    x = shifted(700)
    server = ServerProcess(redis_env, log=tmp_path / "server.log").start()
    try:
        for lo in range(0, 400, 50):
            post(server, "pump", x, lo, lo + 50)
        r = httpx.post(f"{server.http}/v1/streams/pump/rebaseline", json={"points": 150})
        assert r.status_code == 200, r.text
        info = r.json()
        assert info["baseline_shift"] > 0.2 and info["open_alarm"] is None
        assert info["accumulated"] == 0.0 and info["drift_level"] == 0.0
        server.kill9()
        server = ServerProcess(redis_env, log=tmp_path / "server.log").start()
        again = httpx.get(f"{server.http}/v1/streams/pump").json()
        assert again["baseline_shift"] == info["baseline_shift"] and again["count"] == 400
        out = [post(server, "pump", x, lo, lo + 50) for lo in range(400, 700, 50)]
    finally:
        server.stop()
    got = np.concatenate([r["accumulated"] for r in out])
    want, without = in_process(bundle_v1, x, 150), in_process(bundle_v1, x, None)
    np.testing.assert_array_equal(got, want["accumulated"])  # the shift came back from Redis
    alarmed = sum(sum(r["alarm"]) for r in out)  # rows 400.. in alarm
    assert alarmed == want["alarmed"] < without["alarmed"], (alarmed, without["alarmed"])


def test_rebaseline_errors_name_the_field(make_client) -> None:  # type: ignore[no-untyped-def]
    c = make_client()
    r = c.post("/v1/streams/nobody/rebaseline", json={"points": 10})
    assert r.status_code == 404 and "nobody" in r.text
    c.post("/v1/streams/s/points", json={"points": points(series(40), 0)})
    r = c.post("/v1/streams/s/rebaseline", json={"points": 100_000})
    assert r.status_code == 422 and "points" in r.text
    r = c.post("/v1/streams/s/rebaseline")  # no body: the default number of points
    assert r.status_code == 200 and r.json()["count"] == 40


def test_a_long_alarm_rebaselines_the_stream_and_says_so(
    make_client, bundle_v1: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """An alarm lasting the bundle's rebaseline_after_points closes with closed_by
    "rebaseline", the stream's baseline moves, it stays quiet on its new normal, and
    tad_alarms_rebaselined_total counts it (issue 23)."""
    import json

    from tests.support.data import clone_bundle

    alarm = json.loads((bundle_v1 / "manifest.json").read_text())["alarm"]
    models = tmp_path / "short"
    models.mkdir()
    clone_bundle(
        bundle_v1,
        models / "demo",
        version="short",
        alarm=alarm | {"rebaseline_after_points": 60},
    )
    c = make_client(model_dir=models)
    x = shifted(700)
    events = []
    for lo in range(0, 700, 100):
        r = c.post("/v1/streams/pump/points", json={"points": points(x[lo : lo + 100], lo)})
        assert r.status_code == 200, r.text
        events += r.json()["events"]
    closed = [e for e in events if e["kind"] == "closed"]
    assert closed and closed[0]["closed_by"] == "rebaseline", events
    assert closed[0]["at_index"] - closed[0]["trigger_index"] == 60
    assert sum(e["kind"] == "opened" for e in events) == 1  # the new normal stays quiet
    info = c.get("/v1/streams/pump").json()
    assert info["baseline_shift"] > 0.2 and info["rebaseline_after_points"] == 60
    metrics = c.get("/metrics").text
    assert 'tad_alarms_rebaselined_total{model="demo"} 1.0' in metrics
