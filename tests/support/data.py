"""Bundles and demo points for tests: a tiny trained bundle, new versions of it, points."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from detector.bundle import MANIFEST, content_hash, load_bundle
from service.demo import DEMO_CHANNELS, demo_series


def train_bundle(out: Path, version: str = "v1") -> Path:
    from model_training.export import train_and_export
    from model_training.train import TrainConfig

    cfg = TrainConfig(epochs=2, d_model=16, expansion=1, progress=False, seed=0)
    return train_and_export(
        demo_series(2000, seed=1), list(DEMO_CHANNELS), out, cfg, "demo", version=version
    )


def clone_bundle(src: Path, dst: Path, **changes: Any) -> Path:
    """A copy of a bundle with manifest fields changed and its content hash recomputed:
    a new version as far as the service can tell."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / MANIFEST).read_text())
    manifest.update(changes)
    manifest["content_hash"] = content_hash(manifest)
    (dst / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    load_bundle(dst)
    return dst


def later(minutes: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


def series(n: int, seed: int = 3, anomaly: tuple[int, int] | None = (200, 230)) -> np.ndarray:
    return demo_series(n, seed=seed, anomaly=anomaly, start=2000)


def points(values: np.ndarray, start: int = 0, by_name: bool = False) -> list[dict[str, Any]]:
    """Points with seq = start + row, values as a list (or an object keyed by channel)."""
    out = []
    for i, row in enumerate(values.tolist()):
        vals: Any = dict(zip(DEMO_CHANNELS, row, strict=True)) if by_name else row
        out.append({"seq": start + i, "values": vals})
    return out
