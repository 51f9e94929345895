"""Reproduce the README's SMD table: train one bundle per machine, then evaluate them all.

    python bench/smd.py --data ../shared/data/SMD --out runs/smd

Bundles that already exist under OUT/bundles are reused (delete them to retrain); the
training time of each is read from its manifest. Runs on the CPU with one thread per model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_training.cli import bundle_dir_name, evaluate, load_entities  # noqa: E402
from model_training.train import TrainConfig, train_and_export  # noqa: E402


def main(
    data: Annotated[Path, typer.Option()] = Path("../shared/data/SMD"),
    out: Annotated[Path, typer.Option()] = Path("runs/smd"),
    epochs: int = 30,
    only_train: bool = False,
) -> None:
    bundles = out / "bundles"
    cfg = TrainConfig(epochs=epochs)  # every other setting at its default, as `tad train`
    for ent in load_entities("smd", data, None):
        path = bundles / bundle_dir_name(ent.name)
        if not (path / "manifest.json").exists():
            train_and_export(ent.train, list(ent.channel_names), path, cfg, ent.name)
    times = {
        p.parent.name: json.loads(p.read_text())["training"]["train_seconds"]
        for p in sorted(bundles.glob("*/manifest.json"))
    }
    (out / "train_seconds.json").write_text(json.dumps(times, indent=2))
    if not only_train:
        evaluate(data=data, bundles=bundles, out=out / "eval", kind="smd", entity=None)


if __name__ == "__main__":
    typer.run(main)
