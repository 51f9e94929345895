"""Shared fixtures: small generated data and one tiny trained bundle per test session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def synthetic_series(n: int, seed: int = 0) -> np.ndarray:
    """Nine channels: three sinusoid families (three channels each, correlated) + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    cols = []
    for k, period in enumerate((25.0, 40.0, 63.0)):
        base = np.sin(2 * np.pi * t / period + k)
        cols += [base * (1 + 0.3 * j) + 0.05 * rng.normal(size=n) for j in range(3)]
    return np.stack(cols, axis=1)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CCM-TAD bundle trained for a few epochs on synthetic nominal data."""
    pytest.importorskip("torch")
    from model_training.train import TrainConfig, train_and_export

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    cfg = TrainConfig(epochs=6, d_model=32, expansion=2, lr=3e-3, progress=False, seed=1)
    data = synthetic_series(3000)
    return train_and_export(data, [f"c{i}" for i in range(9)], out, cfg, "tiny", "1")
