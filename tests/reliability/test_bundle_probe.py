"""Bundles that pass every hash and shape check but cannot score are refused at load; reload
errors are JSON; the model directory's layout is not shown; the docs can be switched off."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from detector.alarm import AlarmParams
from detector.bundle import MANIFEST, content_hash, sha256_file
from detector.calibration import Calibration
from detector.online import OnlineDetector
from tests.support.data import later, points, series


def nan_bundle(src: Path, dst: Path, version: str) -> Path:
    """A copy of `src` whose graphs output NaN (one weight poisoned), hashes recomputed: a
    newer version as far as every integrity check can tell."""
    import onnx
    from onnx import numpy_helper

    shutil.copytree(src, dst)
    for name in ("model.onnx", "model_step.onnx"):
        model = onnx.load(dst / name)
        for init in model.graph.initializer:
            w = numpy_helper.to_array(init)
            if w.dtype == np.float32 and w.ndim == 1 and init.name.endswith("head.bias"):
                init.CopyFrom(numpy_helper.from_array(np.full_like(w, np.nan), init.name))
        onnx.save(model, dst / name)
    manifest = json.loads((dst / MANIFEST).read_text())
    manifest.update(version=version, created_at=later(5))
    manifest["files"] = {f: sha256_file(dst / f) for f in manifest["files"]}
    manifest["content_hash"] = content_hash(manifest)
    (dst / MANIFEST).write_text(json.dumps(manifest))
    return dst


def test_a_bundle_that_outputs_nan_is_refused_and_the_running_one_stays(
    make_client: Callable[..., Any], model_dir: Path
) -> None:
    c = make_client()
    x = series(60)
    c.post("/v1/streams/s/points", json={"points": points(x[:40])})
    bad = nan_bundle(model_dir / "demo-v1", model_dir / "demo-v2", "v2")
    r = c.post("/v1/models/reload").json()
    refused = {b["directory"]: b["reason"] for b in r["refused"]}
    assert "non-finite scores on probe stream" in refused["demo-v2"], r
    assert [m["version"] for m in r["models"] if m["active"]] == ["v1"]
    out = c.post("/v1/streams/s/points", json={"points": points(x[40:], 40)}).json()
    assert all(s is not None for s in out["score"])  # still scoring with v1
    shutil.rmtree(bad)
    assert c.post("/v1/models/reload").status_code == 200


def test_reload_picks_the_newest_valid_version_after_the_serving_one_is_deleted(
    make_client: Callable[..., Any], model_dir: Path
) -> None:
    from tests.support.data import clone_bundle

    c = make_client()
    clone_bundle(model_dir / "demo-v1", model_dir / "demo-v2", version="v2", created_at=later(5))
    assert c.post("/v1/models/reload").json()["changed"] == ["demo: v1 → v2"]
    shutil.rmtree(model_dir / "demo-v2")  # the serving version's files are gone
    r = c.post("/v1/models/reload").json()
    assert r["changed"] == ["demo: v2 → v1"], r


def test_reload_errors_are_json_and_a_fifo_manifest_is_skipped(
    make_client: Callable[..., Any], model_dir: Path, tmp_path: Path
) -> None:
    c = make_client()
    fifo_dir = model_dir / "demo-fifo"
    fifo_dir.mkdir()
    os.mkfifo(fifo_dir / MANIFEST)
    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(c.post("/v1/models/reload").status_code))
    t.start()
    t.join(20)
    assert done == [200], "a FIFO named manifest.json must not block the reload"
    listed = c.get("/v1/models").text
    assert str(model_dir) not in listed and '"path"' not in listed  # no server paths shown
    gone = tmp_path / "models-gone"
    shutil.copytree(model_dir / "demo-v1", gone / "demo-v1")
    missing = make_client(model_dir=gone)
    shutil.rmtree(gone)  # the model directory vanishes under a running service
    r = missing.post("/v1/models/reload")
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/json")
    assert "does not exist" in r.json()["error"]["message"], r.text
    assert str(tmp_path) not in r.text


def test_docs_can_be_switched_off(make_client: Callable[..., Any]) -> None:
    on, off = make_client(), make_client(docs=False)
    assert on.get("/docs").status_code == 200 and on.get("/openapi.json").status_code == 200
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert off.get(path).status_code == 404, path


def test_a_non_finite_score_at_run_time_is_no_evidence() -> None:
    class SometimesNan:
        def reconstruct(self, w: np.ndarray) -> np.ndarray:
            out = np.zeros((len(w), w.shape[-1]), np.float32)
            out[::2] = np.nan
            return out

    cal = Calibration(
        ("a",), np.zeros(1), np.ones(1), 4.0, np.linspace(0, 1, 50), AlarmParams(0.05, 1.0), 4
    )
    det = OnlineDetector(cal, SometimesNan())
    res = det.step(det.new_state("s"), np.full((40, 1), 0.5), np.arange(40.0))
    nan = ~res.warmup & np.isnan(res.score)
    assert nan.any() and (res.evidence[nan] == 0).all() and np.isnan(res.p_value[nan]).all()
    assert not res.alarm.any()


def test_non_finite_scores_at_run_time_are_counted_and_raise_no_alarm(
    make_client: Callable[..., Any],
) -> None:
    class NanModel:
        def reconstruct(self, w: np.ndarray) -> np.ndarray:
            return np.full((len(w), w.shape[-1]), np.nan, np.float32)

    c = make_client()
    det = c.app.state.services.registry.active["demo"].detector
    det.model, det.incremental = NanModel(), None  # a model that breaks after it was probed
    out = c.post("/v1/streams/s/points", json={"points": points(series(60))}).json()
    assert out["score"][30] is None and not any(out["alarm"]), out["score"][:3]
    text = c.get("/metrics").text
    n = float(
        re.search(r'^tad_points_unscored_total\{reason="non_finite_score"\} (\S+)$', text, re.M)[1]
    )
    assert n == 60 - 23  # every point after the warm-up
