"""The first-run demo: generated sensor data, a small bundle trained on it, and an anomaly.

`tad serve --demo` copies the committed demo bundle (service/demo_bundle, built by
`python -m service.demo build`) into an empty model directory, so the service runs on a fresh
machine without torch, datasets or downloads; `tad replay --demo` streams the same kind of data
with an injected fault, which the demo bundle alarms on.

Normal readings of the demo (what the bundle was trained on): temperature, pressure, flow and
vibration each a sinusoid in [−1, 1] (periods 60, 45, 45 and 15 points) plus noise of 0.05, with
flow = 0.8 · pressure + 0.2 · its own sinusoid. The fault raises pressure by 1.5, lowers flow by
1.5 and triples vibration.
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


COMMITTED = Path(__file__).resolve().parent / "demo_bundle"
FIXED_VERSION = "1"
FIXED_CREATED_AT = "2026-12-01T00:00:00+00:00"


def ensure_demo_bundle(model_dir: Path, epochs: int = 4) -> Path | None:
    """Put the demo bundle into `model_dir/demo` unless the directory already has bundles:
    a copy of the committed one (no torch needed), else trained (the training extra)."""
    if has_bundles(model_dir):
        return None
    if (COMMITTED / MANIFEST).is_file():
        import shutil

        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(COMMITTED, model_dir / DEMO_NAME, dirs_exist_ok=True)
        log.info("copied the demo bundle into %s", model_dir / DEMO_NAME)
        return model_dir / DEMO_NAME
    return train_demo_bundle(model_dir / DEMO_NAME, epochs)


def build_committed(out: Path = COMMITTED, epochs: int = 4) -> Path:
    """Train the demo bundle with fixed version and creation time (what is committed)."""
    import json

    from detector.bundle import content_hash

    train_demo_bundle(out, epochs)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest.update(version=FIXED_VERSION, created_at=FIXED_CREATED_AT)
    manifest["training"]["train_seconds"] = 0.0
    manifest["content_hash"] = content_hash(manifest)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return out


def train_demo_bundle(out: Path, epochs: int = 4) -> Path:
    """Train the demo bundle into `out`. Needs torch; a few seconds of CPU."""
    try:
        from model_training.export import train_and_export
        from model_training.train import TrainConfig
    except ImportError as exc:  # the slim runtime image has no torch
        raise RuntimeError(
            f"no committed demo bundle and the demo bundle in {out} needs torch to be "
            "trained (pip install '.[train]'), or copy a bundle there"
        ) from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("training the demo bundle into %s", out)
    cfg = TrainConfig(epochs=epochs, d_model=32, expansion=2, progress=False, seed=0)
    train_and_export(demo_series(4000, seed=1), list(DEMO_CHANNELS), out, cfg, DEMO_NAME)
    return out


if __name__ == "__main__":  # python -m service.demo build [DIR]
    import sys

    args = sys.argv[1:]
    usage = "usage: python -m service.demo build [DIR]  (DIR defaults to service/demo_bundle)"
    if args[:1] != ["build"] or len(args) > 2 or any(a.startswith("-") for a in args):
        sys.exit(usage)  # `--help` too: never a folder named after an option
    sys.stdout.write(f"{build_committed(Path(args[1]) if len(args) > 1 else COMMITTED)}\n")
