"""Reproduce the EMTC UEA table: `python bench/emtc_uea.py [--seeds 5] [--epochs N]`.

Writes docs/results/emtc_uea.json and docs/results/emtc_uea.md (one torch thread, CPU).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import typer  # noqa: E402

from model_training.emtc.cli import DEFAULT_EPOCHS, cluster_eval  # noqa: E402

DATASETS = [
    "BasicMotions",
    "Epilepsy",
    "FingerMovements",
    "RacketSports",
    "AtrialFibrillation",
    "JapaneseVowels",
]


def main(
    data_root: Path = ROOT.parent / "shared" / "data" / "UEA",
    seeds: int = 5,
    epochs: int = DEFAULT_EPOCHS,
    out: Path = ROOT / "docs" / "results",
    device: str = "cpu",
) -> None:
    """Run `cluster_eval` on the six UEA datasets."""
    cluster_eval(
        data_root,
        DATASETS,
        seeds=seeds,
        epochs=epochs,
        out=out,
        device=device,
        threads=1,
        name="emtc_uea",
    )


if __name__ == "__main__":
    typer.run(main)
