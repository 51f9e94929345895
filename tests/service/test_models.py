"""Model directory: versions, hot reload keeping stream state, refused bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.data import clone_bundle, later, points, series
from tests.support.results import assert_same_results, collect, reference


def post(client: Any, sid: str, pts: list[dict[str, Any]]) -> Any:
    return client.post(f"/v1/streams/{sid}/points", json={"points": pts})


def test_models_are_listed_with_versions_and_the_newest_serves(
    make_client: Any, model_dir: Path, bundle_v1: Path
) -> None:
    clone_bundle(bundle_v1, model_dir / "demo-v0", version="v0", created_at="2001-01-01T00:00:00")
    c = make_client()
    listed = c.get("/v1/models").json()
    versions = {m["version"]: m["active"] for m in listed["models"]}
    assert versions == {"v1": True, "v0": False}
    m = next(m for m in listed["models"] if m["active"])
    assert m["channels"] == ["temperature", "pressure", "flow", "vibration"]
    assert m["window_size"] == 24 and len(m["content_hash"]) == 64
    assert 'tad_model_info{hash="' in c.get("/metrics").text
    assert post(c, "s", points(series(3))).json()["model_version"] == "v1"


def test_hot_reload_continues_every_stream_without_losing_state(
    client: Any, model_dir: Path, bundle_v1: Path
) -> None:
    x = series(300)
    first = post(client, "s", points(x[:150])).json()
    assert first["model_version"] == "v1"
    clone_bundle(bundle_v1, model_dir / "demo-v2", version="v2", created_at=later(1))
    reload = client.post("/v1/models/reload").json()
    assert reload["changed"] == ["demo: v1 → v2"] and reload["refused"] == []
    second = post(client, "s", points(x[150:], 150)).json()
    assert second["model_version"] == "v2" and second["index"][0] == 150
    # v2 has the same weights: the stream continues exactly as if nothing had happened
    assert_same_results(collect([first, second]), reference(bundle_v1, x, [150]))
    metrics = client.get("/metrics").text
    assert 'version="v2"' in metrics and 'version="v1"' not in metrics


def test_a_refused_bundle_is_reported_and_the_running_version_stays(
    client: Any, model_dir: Path, bundle_v1: Path
) -> None:
    post(client, "s", points(series(30)))
    bad = clone_bundle(bundle_v1, model_dir / "demo-v3", version="v3", created_at=later(2))
    data = (bad / "model.onnx").read_bytes()
    (bad / "model.onnx").write_bytes(data[: len(data) // 2])  # truncated copy
    (model_dir / "junk").mkdir()
    (model_dir / "junk" / "manifest.json").write_text("{not json")
    reload = client.post("/v1/models/reload").json()
    assert reload["changed"] == []
    reasons = {r["directory"]: r["reason"] for r in reload["refused"]}
    assert "sha256" in reasons["demo-v3"] and "not valid JSON" in reasons["junk"]
    assert "tad_bundles_refused_total 2.0" in client.get("/metrics").text
    r = post(client, "s", points(series(40)[30:], 30)).json()
    assert r["model_version"] == "v1" and r["index"][0] == 30


def test_an_older_valid_version_serves_when_the_newest_is_broken(
    make_client: Any, model_dir: Path, bundle_v1: Path
) -> None:
    # valid manifest and hashes, but the ONNX graph does not take 12-step windows: only
    # ONNX Runtime notices, and the service falls back to the newest version that loads
    clone_bundle(
        bundle_v1, model_dir / "demo-v9", version="v9", created_at=later(5), window_size=12
    )
    c = make_client()
    assert c.get("/readyz").status_code == 200
    assert post(c, "s", points(series(3))).json()["model_version"] == "v1"
    (refused,) = c.get("/v1/models").json()["refused"]
    assert refused["directory"] == "demo-v9" and "do not fit" in refused["reason"]
    assert [m["version"] for m in c.get("/v1/models").json()["models"]] == ["v1"]


def test_a_version_with_other_channels_conflicts_with_existing_streams(
    client: Any, model_dir: Path, bundle_v1: Path
) -> None:
    post(client, "old", points(series(30)))
    clone_bundle(
        bundle_v1,
        model_dir / "demo-v4",
        version="v4",
        created_at=later(3),
        channel_names=["t", "p", "f", "v"],
    )
    assert client.post("/v1/models/reload").json()["changed"] == ["demo: v1 → v4"]
    r = post(client, "old", points(series(31)[30:], 30))
    assert r.status_code == 409 and "channel schema" in r.json()["error"]["message"]
    assert client.delete("/v1/streams/old").status_code == 204
    r = client.post(
        "/v1/streams/old/points",
        json={"points": [{"seq": 0, "values": {"t": 1.0, "p": 2.0, "f": 3.0, "v": 4.0}}]},
    )
    assert r.status_code == 200 and r.json()["model_version"] == "v4"


def test_not_ready_without_models(make_client: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    c = make_client(model_dir=empty)
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["models"] == 0
    assert c.get("/healthz").status_code == 200
    r = post(c, "s", points(series(3)))
    assert r.status_code == 422 and r.json()["error"]["type"] == "model_required"
