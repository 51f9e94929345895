"""Issue 23: data as it comes — constant channels, status flags, bursts in the validation period,
degenerate calibrations — and the label-free choice of the score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.bundle import CALIBRATION_FILE, MANIFEST, BundleError, load_bundle, write_bundle
from detector.runtime import online_detector
from tests.conftest import synthetic_series

pytest.importorskip("torch")


def _train(data: np.ndarray, out: Path, **kw: object) -> Path:
    from model_training.export import train_and_export
    from model_training.train import TrainConfig

    cfg = TrainConfig(epochs=3, d_model=32, expansion=2, lr=3e-3, progress=False, seed=1, **kw)  # type: ignore[arg-type]
    names = [f"c{i}" for i in range(data.shape[1])]
    return train_and_export(data, names, out, cfg, out.name, "1")


def _alarms(bundle: Path, values: np.ndarray) -> list[int]:
    """Trigger indices of the alarms opened while replaying `values` into a new stream."""
    det = online_detector(load_bundle(bundle), "cpu")
    res = det.step(det.new_state("s"), values, np.arange(len(values), dtype=np.float64))
    return [e.trigger_index for e in res.events if e.kind == "opened"]


def _with_constant(n: int, seed: int) -> np.ndarray:
    x = synthetic_series(n, seed)
    return np.c_[x, np.full(n, 7.5)]  # a setpoint that never moved in training


def _with_status(n: int, seed: int) -> np.ndarray:
    x = synthetic_series(n, seed)
    rng = np.random.default_rng(seed + 100)
    flag = (rng.uniform(size=n) < 0.05).astype(float)  # a command flag, on 5 % of the time
    return np.c_[x, flag]


@pytest.mark.parametrize("case", ["constant", "status", "burst"])
def test_awkward_channels_alarm_on_a_gross_fault_and_stay_quiet_on_nominal(
    case: str, tmp_path: Path
) -> None:
    if case == "constant":
        train, live = _with_constant(3000, 0), _with_constant(1500, 9)
    elif case == "status":
        train, live = _with_status(3000, 0), _with_status(1500, 9)
    else:
        train, live = synthetic_series(3000), synthetic_series(1500, seed=9)
        train[2700:2720, :3] += 1.5  # a burst inside the validation period (last 20 %)
    bundle = _train(train, tmp_path / case)
    manifest = json.loads((bundle / MANIFEST).read_text())
    if case == "constant":
        assert manifest["channel_types"]["constant"] == ["c9"]
    if case == "status":
        assert manifest["channel_types"]["status"] == ["c9"]
    assert _alarms(bundle, live) == []  # nominal replay: quiet
    faulty = live.copy()
    if case == "constant":
        faulty[900:960, 9] = 8.5  # the setpoint moves
    else:
        faulty[900:960, 3:6] += 3.0  # a sensor family jumps
    triggers = _alarms(bundle, faulty)
    assert triggers and 900 <= triggers[0] < 960


def test_the_score_chosen_is_the_one_separating_injected_faults_best(tmp_path: Path) -> None:
    bundle = _train(synthetic_series(3000), tmp_path / "auto", score="auto")
    score = json.loads((bundle / MANIFEST).read_text())["score"]
    aucs = score["selection"]["fault_auc"]
    assert set(aucs) == {"hybrid", "pca", "distance"}
    assert score["kind"] == max(aucs, key=lambda k: aucs[k])
    # correlated channel families: the distance from the mean misses decoupling faults
    assert aucs["distance"] < max(aucs["hybrid"], aucs["pca"])
    fixed = _train(synthetic_series(3000), tmp_path / "fixed", score="distance")
    assert json.loads((fixed / MANIFEST).read_text())["score"]["kind"] == "distance"


def test_a_degenerate_calibration_is_refused_at_export(tmp_path: Path) -> None:
    from model_training.calibrate import DegenerateCalibrationError
    from model_training.export import ExportError, check_replay
    from model_training.train import TrainConfig, train

    result = train(synthetic_series(1200), TrainConfig(epochs=1, d_model=16, progress=False))
    check_replay(result)  # as trained: quiet on its own validation period
    result.alarm["alpha"], result.alarm["threshold"] = 0.9, 0.0  # evidence nearly everywhere
    with pytest.raises(ExportError, match="degenerate calibration"):
        check_replay(result)
    with pytest.raises(DegenerateCalibrationError, match="validation scores equal"):
        train(np.ones((1200, 3)), TrainConfig(epochs=1, d_model=16, progress=False))


def _rewrite(bundle: Path, **arrays: np.ndarray) -> None:
    """Change calibration arrays and re-sign the bundle, as a hand-made bundle would be."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    with np.load(bundle / CALIBRATION_FILE) as z:
        kept = {k: z[k] for k in z.files} | arrays
    model = (bundle / "model.onnx").read_bytes()
    for extra in ("model_step.onnx", "model_embed.onnx"):
        (bundle / extra).unlink(missing_ok=True)
    for key in ("files", "content_hash", "schema_version"):
        manifest.pop(key, None)
    write_bundle(bundle, manifest, kept, model)


def test_a_degenerate_calibration_is_refused_at_load(tiny_bundle: Path, tmp_path: Path) -> None:
    import shutil

    equal = tmp_path / "equal"
    shutil.copytree(tiny_bundle, equal)
    n = len(np.load(equal / CALIBRATION_FILE)["sorted_losses"])
    _rewrite(equal, sorted_losses=np.zeros(n), validation_scores=np.zeros(n))
    with pytest.raises(BundleError, match="all .* calibration scores equal 0"):
        load_bundle(equal)
    alarming = tmp_path / "alarming"
    shutil.copytree(tiny_bundle, alarming)
    manifest = json.loads((alarming / MANIFEST).read_text())
    manifest["alarm"]["alpha"], manifest["alarm"]["threshold"] = 0.9, 0.0
    (alarming / MANIFEST).write_text(json.dumps(manifest))
    _rewrite(alarming)
    with pytest.raises(BundleError, match="replaying its nominal validation period"):
        load_bundle(alarming)


def test_an_oversized_manifest_is_refused_before_it_is_read(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """Issue 25: a 2 GiB sparse manifest.json took 19 s and 4 GB of memory to refuse."""
    import shutil

    big = tmp_path / "big"
    shutil.copytree(tiny_bundle, big)
    with (big / MANIFEST).open("r+b") as f:
        f.truncate(2 << 30)  # sparse: no disk used
    with pytest.raises(BundleError, match="manifest.json is 2147483648 bytes; the limit is"):
        load_bundle(big)  # refused from its size, before a byte is read
