"""Batch ingest over HTTP: results, duplicates, ordering, multi-stream batches, stream binding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.support.data import clone_bundle, points, series
from tests.support.results import assert_same_results, collect, reference


def post(client: Any, sid: str, pts: list[dict[str, Any]], **extra: Any) -> Any:
    return client.post(f"/v1/streams/{sid}/points", json={"points": pts, **extra})


def test_results_equal_the_online_core_in_any_batching(client: Any, bundle_v1: Path) -> None:
    x = series(300)
    cuts = [1, 5, 23, 24, 25, 80, 81, 150, 299]
    results = []
    for lo, hi in zip([0, *cuts], [*cuts, 300], strict=True):
        r = post(client, "s", points(x[lo:hi], lo))
        assert r.status_code == 200, r.text
        results.append(r.json())
    got = collect(results)
    assert_same_results(got, reference(bundle_v1, x, cuts))
    assert got["warmup"][:23].all() and not got["warmup"][23:].any()
    assert np.isnan(got["score"][:23]).all() and np.isfinite(got["score"][23:]).all()
    assert got["events"], "the injected fault should open an alarm"


def test_values_by_channel_name_equal_values_in_order(make_client: Any) -> None:
    a, b = make_client(), make_client()
    x = series(60)
    pts = points(x, by_name=True)
    for p in pts:  # any key order
        p["values"] = dict(reversed(list(p["values"].items())))
    ra, rb = post(a, "s", points(x)).json(), post(b, "s", pts).json()
    assert ra["score"] == rb["score"] and ra["accumulated"] == rb["accumulated"]


def test_resent_points_are_duplicates_and_not_counted_twice(client: Any) -> None:
    x = series(100)
    first = post(client, "s", points(x[:60])).json()
    again = post(client, "s", points(x[40:80], 40)).json()
    assert again["status"] == ["duplicate"] * 20 + ["accepted"] * 20
    assert (again["accepted"], again["duplicates"]) == (20, 20)
    assert again["index"] == list(range(60, 80))
    assert client.get("/v1/streams/s").json()["count"] == 80
    assert first["index"] == list(range(60))
    metrics = client.get("/metrics").text
    assert "tad_points_accepted_total 80.0" in metrics
    assert "tad_points_duplicate_total 20.0" in metrics


def test_out_of_order_is_rejected_and_nothing_of_the_request_is_kept(client: Any) -> None:
    x = series(100)
    post(client, "s", points(x[:50]))
    # 45.5 was never sent and is before the last accepted time (49): out of order
    bad = points(x[50:55], 50) + [{"timestamp": 45.5, "values": x[55].tolist()}]
    r = post(client, "s", bad)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "out_of_order" and err["field"] == "points[5].timestamp"
    assert err["stream_id"] == "s" and "out of order" in err["message"]
    assert client.get("/v1/streams/s").json()["count"] == 50  # the 5 good points were not kept
    assert 'tad_points_rejected_total{reason="out_of_order"} 6.0' in client.get("/metrics").text


def test_a_duplicate_older_than_the_window_is_out_of_order(make_client: Any) -> None:
    c = make_client(duplicate_window=4)
    x = series(40)
    post(c, "s", points(x[:25]))
    post(c, "s", points(x[25:30], 25))  # remembered: the last 4, or all of the last request
    assert post(c, "s", points(x[25:26], 25)).json()["status"] == ["duplicate"]
    r = post(c, "s", points(x[20:21], 20))
    assert r.status_code == 422 and r.json()["error"]["type"] == "out_of_order"


def test_many_streams_in_one_request_use_one_model_call(client: Any, bundle_v1: Path) -> None:
    xs = {f"m{i}": series(80, seed=i) for i in range(5)}
    body = {"streams": [{"stream_id": k, "points": points(v[:50])} for k, v in xs.items()]}
    before = _histogram_count(client)
    r = client.post("/v1/points", json=body)
    assert r.status_code == 200, r.text
    assert _histogram_count(client) == before + 1
    body = {"streams": [{"stream_id": k, "points": points(v[50:], 50)} for k, v in xs.items()]}
    r2 = client.post("/v1/points", json=body).json()
    for i, (k, v) in enumerate(xs.items()):
        got = collect([r.json()["results"][i], r2["results"][i]])
        assert_same_results(got, reference(bundle_v1, v, [50], stream_id=k))


def test_a_bad_stream_refuses_the_whole_multi_stream_request(client: Any) -> None:
    x = series(30)
    body = {
        "streams": [
            {"stream_id": "ok", "points": points(x[:10])},
            {"stream_id": "bad", "points": [{"seq": 0, "values": [1.0, 2.0]}]},
        ]
    }
    r = client.post("/v1/points", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "streams[1].points[0].values"
    assert client.get("/v1/streams/ok").status_code == 404
    body["streams"][1] = {"stream_id": "ok", "points": points(x[10:20], 10)}
    r = client.post("/v1/points", json=body)
    assert r.status_code == 422 and r.json()["error"]["field"] == "streams[1].stream_id"


def test_streams_bind_to_the_named_or_the_only_model(
    make_client: Any, model_dir: Path, bundle_v1: Path
) -> None:
    c = make_client()
    assert post(c, "a", points(series(5))).json()["model"] == "demo"
    r = post(c, "b", points(series(5)), model="nope")
    assert r.status_code == 404 and r.json()["error"]["field"] == "model"
    clone_bundle(bundle_v1, model_dir / "other", name="other", version="o1")
    c2 = make_client()
    r = post(c2, "c", points(series(5)))
    assert r.status_code == 422 and r.json()["error"]["type"] == "model_required"
    assert post(c2, "c", points(series(5)), model="other").json()["model"] == "other"
    r = post(c2, "c", points(series(5), 5), model="demo")
    assert r.status_code == 409 and "bound to model 'other'" in r.json()["error"]["message"]


def test_unknown_streams_are_404_without_auto_create(make_client: Any) -> None:
    c = make_client(auto_create_streams=False)
    r = post(c, "s", points(series(3)))
    assert r.status_code == 404 and r.json()["error"]["type"] == "unknown_stream"
    assert c.put("/v1/streams/s", json={}).status_code == 201
    assert post(c, "s", points(series(3))).status_code == 200


def test_stream_alpha_and_threshold_override_the_bundle(client: Any) -> None:
    x = series(300)
    assert client.put("/v1/streams/quiet", json={"threshold": 1e9}).status_code == 201
    info = client.put("/v1/streams/quiet", json={"alpha": 0.2}).json()
    assert (info["alpha"], info["threshold"]) == (0.2, 1e9)
    quiet = post(client, "quiet", points(x)).json()
    loud = post(client, "loud", points(x)).json()
    assert loud["events"] and not quiet["events"] and not any(quiet["alarm"])
    assert quiet["score"] == loud["score"] and quiet["evidence"] != loud["evidence"]
    r = client.put("/v1/streams/quiet", json={"alpha": 1.5})
    assert r.status_code == 422 and r.json()["error"]["field"] == "alpha"


def test_stream_lifecycle_and_alarm_history(client: Any) -> None:
    x = series(300)
    res = post(client, "s", points(x)).json()
    history = client.get("/v1/streams/s/alarms").json()["events"]
    assert history == res["events"] and history[0]["kind"] == "opened"
    assert {"onset_ts", "trigger_ts", "peak_evidence", "top_channels"} <= set(history[0])
    assert set(history[0]["top_channels"]) <= {"temperature", "pressure", "flow", "vibration"}
    closed = [e for e in history if e["kind"] == "closed"]
    assert closed and closed[0]["offset_ts"] is not None
    assert client.get("/v1/streams").json()["streams"] == ["s"]
    assert client.delete("/v1/streams/s").status_code == 204
    assert client.get("/v1/streams/s").status_code == 404
    assert client.get("/v1/streams/s/alarms").status_code == 404
    assert client.delete("/v1/streams/s").status_code == 404


def test_open_alarms_across_streams(client: Any) -> None:
    x = series(300)
    for sid in ("p1", "p2"):
        post(client, sid, points(x[:210]))  # the fault starts at 200: alarms are open at 210
    post(client, "p3", points(x[:100]))
    alarms = client.get("/v1/alarms").json()["alarms"]
    assert [a["stream_id"] for a in alarms] == ["p1", "p2"]
    assert client.get("/v1/streams/p1").json()["open_alarm"]["alarm_id"] == alarms[0]["alarm_id"]
    metrics = client.get("/metrics").text
    assert 'tad_stream_alarm_active{model="demo",stream="p1"} 1.0' in metrics
    assert 'tad_stream_alarm_active{model="demo",stream="p3"} 0.0' in metrics
    post(client, "p1", points(x[210:], 210))
    assert [a["stream_id"] for a in client.get("/v1/alarms").json()["alarms"]] == ["p2"]


def _histogram_count(client: Any) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("tad_scoring_latency_seconds_count"):
            return float(line.split()[-1])
    raise AssertionError("no latency histogram")


def test_stream_and_alarm_lists_come_in_pages(client: Any) -> None:
    for i in range(5):
        assert client.put(f"/v1/streams/p{i}", json={}).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = client.get("/v1/streams", params=params).json()
        assert len(body["streams"]) <= 2
        seen += body["streams"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in range(5)]
    assert client.get("/v1/alarms", params={"limit": 2}).json() == {
        "alarms": [],
        "next_cursor": None,
    }
    r = client.get("/v1/streams", params={"limit": 0})
    assert r.status_code == 422 and r.json()["error"]["field"] == "limit"
