"""Reproduce the EMTC UEA table: `python bench/emtc_uea.py [--seeds 5] [--epochs N]`.

Writes docs/results/<name>.json and .md (default emtc_uea; one torch thread, CPU): EMTC, EMTC
without IVM, k-means on the raw series and the MiniRocket peer, side by side in one run.
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
from model_training.emtc.evaluate import UEA_SIX  # noqa: E402

DATASETS = list(UEA_SIX)


def main(
    data_root: Path = ROOT.parent / "shared" / "data" / "UEA",
    seeds: int = 5,
    epochs: int = DEFAULT_EPOCHS,
    out: Path = ROOT / "docs" / "results",
    device: str = "cpu",
    methods: str = "emtc,no_ivm,kmeans_raw,minirocket",
    name: str = "emtc_uea",
) -> None:
    """Run `cluster_eval` on the six UEA datasets (`--methods kmeans_raw,minirocket` runs the
    peer and the raw baseline only, in minutes, without torch)."""
    cluster_eval(
        data_root,
        DATASETS,
        seeds=seeds,
        epochs=epochs,
        out=out,
        device=device,
        threads=1,
        name=name,
        methods=methods,
    )


if __name__ == "__main__":
    typer.run(main)
