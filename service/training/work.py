"""One training job's work, in the job's own process (service.clustering.process): train on
the job's table with `tad train`'s code and write the bundle into the model directory.

The bundle is written under `<model dir>/.training/` and renamed into place when complete, so
a reload never sees half a bundle, and a job killed mid-way (cancel, OOM, a restart) leaves
only a staging folder that the next attempt clears. torch is imported here, never by the
service.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.training.input import MIN_TRAINING_POINTS, decode_table

STAGING = ".training"
MIN_HOLDOUT = 100  # points of nominal history the promotion check replays at least


def run(
    data: bytes,
    meta: dict[str, Any],
    threads: int,
    progress: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    from detector.bundle import MANIFEST
    from model_training.export import train_and_export
    from model_training.train import TrainConfig

    t0 = time.perf_counter()
    if meta.get("source") == "file":
        values, channels = read_upload(data, meta)
    else:
        values, channels = decode_table(data), list(meta["channels"])
    out = Path(meta["out"])
    if out.exists():
        raise FileExistsError(f"{out.name} already exists in the model directory")
    staging = out.parent / STAGING / out.name
    shutil.rmtree(staging, ignore_errors=True)  # what a killed attempt left
    staging.parent.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(**meta["options"], threads=threads, progress=False)
    promotion = meta.get("promotion")
    train_values, holdout = values, 0
    if promotion:  # the most recent history is held back for the check
        holdout = max(MIN_HOLDOUT, int(len(values) * promotion["holdout_fraction"]))
        if len(values) - holdout < MIN_TRAINING_POINTS:
            raise ValueError(
                f"{len(values)} points cannot hold back {holdout} for the promotion check and "
                f"still train on {MIN_TRAINING_POINTS}: record more history or widen the range"
            )
        train_values = values[:-holdout]

    def on_epoch(h: dict[str, float]) -> None:
        progress(
            {
                "epoch": int(h["epoch"]) + 1,
                "epochs": cfg.epochs,
                "loss": float(h["val_loss"]),
                "fault_auc": float(h["fault_auc"]),
            }
        )

    train_and_export(
        train_values,
        channels,
        staging,
        cfg,
        str(meta["model"]),
        version=str(meta["version"]),
        on_epoch=on_epoch,
        extra=meta.get("manifest_extra") or None,
    )
    verdict = None
    if promotion:
        from service.training.promotion import check

        running = Path(meta["running"]) if meta.get("running") else None
        budget = float(promotion["max_false_alarms_per_10k"])
        verdict = check(staging, running, values, holdout, budget)
        if not verdict["promoted"]:
            shutil.rmtree(staging)  # the running version stays; the job says why
            return {
                "model": meta["model"],
                "version": meta["version"],
                "bundle": None,
                "points": len(train_values),
                "promoted": False,
                "promotion": verdict,
                "seconds": round(time.perf_counter() - t0, 3),
            }
    os.rename(staging, out)  # same file system: the bundle appears whole
    manifest = json.loads((out / MANIFEST).read_text())
    training = manifest.get("training", {})
    return {
        "model": manifest["name"],
        "version": manifest["version"],
        "bundle": out.name,
        "points": len(train_values),
        "promoted": True,
        "promotion": verdict,
        "epoch_kept": training.get("best_epoch"),
        "threshold": manifest.get("alarm", {}).get("threshold"),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def read_upload(data: bytes, meta: dict[str, Any]) -> tuple[Any, list[str]]:
    """An uploaded CSV or Parquet read as `tad train --kind table` reads it: the nominal
    period's [n, C] values and the channel names (a bad file fails the job with the reader's
    message, which names the column and line, and the file by the name it was uploaded as)."""
    import tempfile

    from model_training.data import load_table

    name = Path(str(meta.get("input", {}).get("file") or "")).name or "table.csv"
    opts = dict(meta.get("table") or {})
    with tempfile.TemporaryDirectory(prefix="tad-train-upload-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            ent = load_table(
                path,
                timestamp_column=opts.get("timestamp_column", "auto"),
                label_column=opts.get("label_column", "auto"),
                channels=opts.get("channels"),
                drop_channels=opts.get("drop_channels") or (),
                train_until=opts.get("train_until"),
                train_fraction=opts.get("train_fraction"),
                sep=opts.get("sep"),
                name=meta["model"],
            )
        except ValueError as exc:  # DatasetFormatError and the like: our path is no one's
            raise ValueError(str(exc).replace(str(path), name)) from None
    return ent.train, list(ent.channel_names)
