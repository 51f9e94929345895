"""The first-run demo: generated sensor data, a small bundle trained on it, and an anomaly.

`tad serve --demo` trains a bundle here when the model directory is empty, so the service runs
on a fresh machine without datasets or downloads; `tad replay --demo` streams the same kind of
data with an injected fault, which the demo bundle alarms on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from detector.bundle import MANIFEST

log = logging.getLogger(__name__)

DEMO_NAME = "demo"
DEMO_CHANNELS = ("temperature", "pressure", "flow", "vibration")
_PERIODS = np.array([60.0, 45.0, 45.0, 15.0])
_PHASES = np.array([0.0, 0.7, 1.9, 0.3])


def demo_series(
    n: int, seed: int = 0, anomaly: tuple[int, int] | None = None, start: int = 0
) -> np.ndarray:
    """Coupled sinusoids plus noise, [n, 4]; `anomaly=(a, b)` adds a fault on rows [a, b):
    pressure and flow decouple and vibration jumps (what a failing pump might look like)."""
    rng = np.random.default_rng(seed)
    t = np.arange(start, start + n, dtype=np.float64)[:, None]
    x = np.sin(2 * np.pi * t / _PERIODS + _PHASES) + 0.05 * rng.standard_normal((n, 4))
    x[:, 2] = 0.8 * x[:, 1] + 0.2 * x[:, 2]  # flow follows pressure
    if anomaly is not None:
        a, b = anomaly
        x[a:b, 1] += 1.5
        x[a:b, 2] -= 1.5
        x[a:b, 3] *= 3.0
    return x


def has_bundles(model_dir: Path) -> bool:
    return model_dir.is_dir() and any((p / MANIFEST).is_file() for p in model_dir.iterdir())


def ensure_demo_bundle(model_dir: Path, epochs: int = 4) -> Path | None:
    """Train the demo bundle into `model_dir/demo` unless the directory already has bundles.

    Needs torch (the training extra); takes a few seconds of CPU."""
    if has_bundles(model_dir):
        return None
    try:
        from model_training.train import TrainConfig, train_and_export
    except ImportError as exc:  # the slim runtime image has no torch
        raise RuntimeError(
            f"the model directory {model_dir} is empty and the demo bundle needs torch to be "
            "trained (pip install '.[train]'), or copy a bundle there"
        ) from exc
    model_dir.mkdir(parents=True, exist_ok=True)
    out = model_dir / DEMO_NAME
    log.info("training the demo bundle into %s", out)
    cfg = TrainConfig(epochs=epochs, d_model=32, expansion=2, progress=False, seed=0)
    train_and_export(demo_series(4000, seed=1), list(DEMO_CHANNELS), out, cfg, DEMO_NAME)
    return out
