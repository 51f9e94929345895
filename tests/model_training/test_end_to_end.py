"""Tiny synthetic run: train, export, evaluate through the online core; the anomaly is caught."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.bundle import load_bundle
from model_training.data import Entity
from model_training.evaluate import evaluate_entities, run_entity, write_report
from tests.conftest import synthetic_series


def anomalous_entity() -> Entity:
    test = synthetic_series(1500, seed=9)
    labels = np.zeros(1500, np.int8)
    test[900:960, 3:6] += 2.5  # one channel family jumps
    labels[900:960] = 1
    train = synthetic_series(3000).astype(np.float32)
    names = tuple(f"c{i}" for i in range(9))
    return Entity("tiny", train, test.astype(np.float32), labels, names)


def test_injected_anomaly_is_caught_label_free(tiny_bundle: Path, tmp_path: Path) -> None:
    run = run_entity(anomalous_entity(), load_bundle(tiny_bundle))
    assert run.predictions[900:960].mean() > 0.5
    assert run.predictions[:850].mean() < 0.02  # nominal part mostly quiet
    report = evaluate_entities([anomalous_entity()], tiny_bundle.parent, tmp_path / "plots")
    write_report(report, tmp_path)
    assert report["aggregate"]["label_free"]["f1"] > 0.5
    assert report["aggregate"]["oracle"]["f1"] >= report["aggregate"]["label_free"]["f1"]
    assert (tmp_path / "report.md").exists() and (tmp_path / "plots" / "tiny.png").exists()
