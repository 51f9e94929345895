"""The default score on generated data: injected faults rank above nominal points; a bundle
calibrated on 60 validation points can alarm; baselines calibrate and alarm like the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from detector.bundle import load_bundle
from detector.runtime import online_detector
from model_training.alarm_metrics import alarm_report
from model_training.baselines import baseline_scores
from model_training.calibrate import CalibrationRule
from model_training.evaluate import run_scores
from tests.conftest import synthetic_series

FAULTS = {"level_shift": (300, 360), "spike": (700, 701), "decoupling": (1100, 1160)}


def faulty_series() -> np.ndarray:
    x = synthetic_series(1500, seed=5)
    a, b = FAULTS["level_shift"]
    x[a:b, 0] += 1.0  # one channel steps up, still inside its family's range
    x[FAULTS["spike"][0], 4] += 2.5
    a, b = FAULTS["decoupling"]
    x[a:b, 7] = x[a - 13 : b - 13, 7]  # in range, but out of step with channels 6 and 8
    return x


def test_default_score_ranks_injected_faults_above_nominal_points(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    assert bundle.manifest["score"]["kind"] == "hybrid"
    x = faulty_series()
    det = online_detector(bundle)
    res = det.step(det.new_state("s"), x, np.arange(len(x), dtype=float))
    nominal = np.ones(len(x), bool)
    nominal[:23] = False  # warm-up
    for a, b in FAULTS.values():
        nominal[a : b + 24] = False  # the fault and the windows that still contain it
    for kind, (a, b) in FAULTS.items():
        s = np.r_[res.score[nominal], res.score[a:b]]
        y = np.r_[np.zeros(nominal.sum()), np.ones(b - a)]
        assert roc_auc_score(y, s) > 0.95, kind


def test_a_bundle_calibrated_on_60_points_can_alarm(tmp_path: Path) -> None:
    from model_training.export import train_and_export
    from model_training.train import TrainConfig

    data = synthetic_series(300)  # 20 % validation: 60 points
    cfg = TrainConfig(epochs=3, d_model=16, expansion=2, progress=False, alpha=0.01)
    out = train_and_export(data, [f"c{i}" for i in range(9)], tmp_path / "b", cfg, "small")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["n_validation"] == 60
    assert "60 validation points" in manifest["training"]["warnings"][0]
    assert manifest["alarm"]["threshold"] > 0
    x = synthetic_series(400, seed=3)
    x[300:330] = 50.0  # a gross fault: values ≈ 50 against ≈ 1
    det = online_detector(load_bundle(out))
    res = det.step(det.new_state("s"), x, np.arange(400.0))
    # the evidence reads a running median of 9 scores: the alarm is raised a few points in,
    # and its onset is backtracked to the fault's start
    assert res.alarm[300:330].mean() > 0.5
    opened = [e for e in res.events if e.kind == "opened"]
    assert opened and 295 <= opened[0].onset_index <= 305 < opened[0].trigger_index < 315
    assert res.alarm[:290].mean() < 0.05  # a tiny model on 240 points: rare false alarms


def test_baselines_calibrate_and_alarm_like_the_bundle() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2000, 3)).astype(np.float32)
    test = rng.normal(size=(600, 3))
    test[400:430] += 6.0
    labels = np.zeros(600, np.int8)
    labels[400:430] = 1
    rule = CalibrationRule()
    for b in baseline_scores(train, test):
        run = run_scores(b.name, labels, b.validation, b.test, rule, 1)
        rep = alarm_report(labels, run.spans)
        assert rep.segments_detected == 1 and rep.alarm_precision >= 0.5, b.name
        assert run.predictions[:390].sum() == 0 and run.threshold > 0, b.name
        # at most one false alarm on 600 points of white noise (PCA: 8 points at 526, the
        # running median's noise; the raw score had none)
        assert rep.alarms <= 2, b.name
