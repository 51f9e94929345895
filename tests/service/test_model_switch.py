"""Moving a stream to another model (issue 26, part 4): `PUT /v1/streams/{id}` with a model of
the same channels keeps the stream's last points and history, so it scores at once; its
evidence restarts, an open alarm closes into its history, and the switch is listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.data import clone_bundle, points, series


@pytest.fixture
def two_models(make_client: Any, model_dir: Path, bundle_v1: Path) -> Any:
    """demo and other: two models of the same channels (other is a renamed copy)."""
    clone_bundle(bundle_v1, model_dir / "other", name="other", version="o1")
    return make_client(history_points=1000)


def post(c: Any, stream: str, x: np.ndarray, lo: int, hi: int, **params: str) -> Any:
    r = c.post(f"/v1/streams/{stream}/points", json={"points": points(x[lo:hi], lo)}, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_switched_stream_scores_at_once_and_keeps_its_history(two_models: Any) -> None:
    c = two_models
    x = series(300, anomaly=None)
    c.put("/v1/streams/s", json={"model": "demo"})
    post(c, "s", x, 0, 100)
    r = c.put("/v1/streams/s", json={"model": "other"})
    assert r.status_code == 200, r.text
    info = r.json()
    assert info["model"] == "other" and info["count"] == 100
    (switch,) = info["model_history"]
    assert (switch["model"], switch["previous"], switch["from_index"]) == ("other", "demo", 100)
    after = post(c, "s", x, 100, 140)
    assert after["model"] == "other" and not any(after["warmup"])
    c.put("/v1/streams/ref", json={"model": "other"})
    ref = post(c, "ref", x, 0, 140)
    assert after["score"] == ref["score"][100:]  # the same windows, the same model
    assert after["index"] == list(range(100, 140))
    got = c.get("/v1/streams/s/points", params={"limit": 1000}).json()
    assert [p["index"] for p in got["points"]] == list(range(140))
    again = c.put("/v1/streams/s", json={"model": "other"})  # already there: nothing changes
    assert again.status_code == 200 and len(again.json()["model_history"]) == 1
    r = c.post("/v1/streams/s/points", json={"points": points(x[140:141], 140), "model": "demo"})
    assert r.status_code == 409  # points naming the old model are still refused


def test_an_open_alarm_closes_when_the_stream_moves(two_models: Any) -> None:
    c = two_models
    x = series(400)  # a fault at rows 200–230
    c.put("/v1/streams/f", json={"model": "demo"})
    out = post(c, "f", x, 0, 215)
    assert c.get("/v1/streams/f").json()["open_alarm"] is not None, out["events"]
    info = c.put("/v1/streams/f", json={"model": "other"}).json()
    assert info["open_alarm"] is None and info["accumulated"] == 0.0
    events = c.get("/v1/streams/f/alarms").json()["events"]
    assert [e["kind"] for e in events] == ["opened", "closed"]
    assert events[-1]["model"] == "demo" and events[-1]["at_index"] == 214
    later = post(c, "f", x, 215, 400)
    assert all(e["alarm_id"] >= 2 for e in later["events"])  # numbering carries on


def test_a_model_of_other_channels_is_refused(
    make_client: Any, model_dir: Path, bundle_v1: Path
) -> None:
    clone_bundle(
        bundle_v1,
        model_dir / "renamed",
        name="renamed",
        version="r1",
        channel_names=["t", "p", "f", "v"],
    )
    c = make_client()
    x = series(50, anomaly=None)
    c.put("/v1/streams/s", json={"model": "demo"})
    post(c, "s", x, 0, 50)
    r = c.put("/v1/streams/s", json={"model": "renamed"})
    assert r.status_code == 409 and r.json()["error"]["field"] == "model"
    assert "same channels" in r.json()["error"]["message"]
    assert c.get("/v1/streams/s").json()["model"] == "demo"
    r = c.put("/v1/streams/s", json={"model": "nope"})
    assert r.status_code == 404


def test_moving_a_stream_takes_an_admin_key(
    make_client: Any, model_dir: Path, bundle_v1: Path
) -> None:
    clone_bundle(bundle_v1, model_dir / "other", name="other", version="o1")
    c = make_client(api_keys="root-key-0001,ingest:ingest-key-02")
    ingest, admin = {"X-API-Key": "ingest-key-02"}, {"X-API-Key": "root-key-0001"}
    assert c.put("/v1/streams/s", json={"model": "demo"}, headers=ingest).status_code == 201
    r = c.put("/v1/streams/s", json={"model": "other"}, headers=ingest)
    assert r.status_code == 403
    assert c.put("/v1/streams/s", json={"model": "other"}, headers=admin).status_code == 200
