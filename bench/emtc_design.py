"""EMTC design study on the UEA TRAIN splits: `python bench/emtc_design.py [--seeds 3]`.

Why TRAIN: a design default (the epoch budget, the stopping rule, the contrastive schedule) must
not be chosen with the TEST labels that `make emtc` reports. This script clusters each
dataset's TRAIN split (a disjoint sample of the same task) with every variant below, scores it
with the TRAIN labels, and writes docs/results/emtc_design.json and .md. The default in
`EMTCConfig` is the variant with the best mean TRAIN ACC; `make emtc` then reports TEST.

Runs (variant, dataset, seed) tasks on `--workers` processes, one torch thread each. The
same run scores the simple peers on the same TRAIN splits and seeds: k-means on the raw
series and MiniRocket features + k-means (`BASELINES`; no training, "mean epochs" 0).
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import typer  # noqa: E402
from tqdm import tqdm  # noqa: E402

from model_training.emtc.config import EMTCConfig  # noqa: E402
from model_training.emtc.evaluate import UEA_SIX  # noqa: E402

DATASETS = list(UEA_SIX)
_CONVERGE = {"epochs": 200, "stop_patience": 5, "stop_label_change": 0.01, "min_epochs": 10}
VARIANTS: dict[str, dict[str, Any]] = {
    "fixed 40 epochs": {"epochs": 40, "stop_patience": 0},
    "converge (<=200)": dict(_CONVERGE),
    "converge + ramp 30": {**_CONVERGE, "contra_ramp_epochs": 30},
    "converge + warm-up 10 + ramp 30": {
        **_CONVERGE,
        "warmup_epochs": 10,
        "contra_ramp_epochs": 30,
    },
    # milder masking (ε 0.15: ≈ 4 % of entries masked for a Gaussian-shaped score, 20 % at 0.3)
    # and a softer contrast (τ 1.0), both against the lock-in of the first partition
    "converge + ε 0.15": {**_CONVERGE, "epsilon": 0.15},
    "converge + τ 1.0": {**_CONVERGE, "tau": 1.0},
    "converge + ε 0.15 + τ 1.0": {**_CONVERGE, "epsilon": 0.15, "tau": 1.0},
}


BASELINES = ("k-means raw (baseline)", "MiniRocket + k-means (peer)")


def _task(data_root: str, name: str, variant: str, seed: int) -> dict[str, Any]:
    from model_training.emtc.evaluate import kmeans_raw, load_uea
    from model_training.emtc.metrics import score_clustering
    from model_training.emtc.minirocket import minirocket_kmeans

    data = load_uea(Path(data_root), name, "TRAIN")
    x, k = data["X"], len(np.unique(data["y"]))
    t0 = time.perf_counter()
    epochs = 0
    if variant == BASELINES[0]:
        labels = kmeans_raw(x, k, seed)
    elif variant == BASELINES[1]:
        labels, _ = minirocket_kmeans(x.astype(np.float32), k, seed)
    else:
        import torch

        from model_training.emtc.train import fit_predict

        torch.set_num_threads(1)
        res = fit_predict(x, k, replace(EMTCConfig(), **VARIANTS[variant], seed=seed))
        labels, epochs = res.labels, len(res.history)
    return {
        "dataset": name,
        "variant": variant,
        "seed": seed,
        **score_clustering(data["y"], labels),
        "epochs_trained": epochs,
        "seconds": time.perf_counter() - t0,
    }


def _table(runs: list[dict[str, Any]], variants: list[str], datasets: list[str]) -> str:
    head = "| variant | " + " | ".join(datasets) + " | mean ACC | mean epochs | s / fit |"
    rows = [head, "|" + "---|" * (len(datasets) + 4)]
    for v in variants:
        mine = [r for r in runs if r["variant"] == v]
        accs = []
        cells = []
        for ds in datasets:
            vals = [r["acc"] for r in mine if r["dataset"] == ds]
            accs.append(float(np.mean(vals)))
            cells.append(f"{np.mean(vals):.3f} ± {np.std(vals):.3f}")
        epochs = np.mean([r["epochs_trained"] for r in mine])
        secs = np.mean([r["seconds"] for r in mine])
        rows.append(
            f"| {v} | "
            + " | ".join(cells)
            + f" | {np.mean(accs):.3f} | {epochs:.0f} | {secs:.1f} |"
        )
    return "\n".join(rows) + "\n"


def main(
    data_root: Path = ROOT.parent / "shared" / "data" / "UEA",
    seeds: int = 3,
    workers: int = 2,
    variants: str = ",".join(VARIANTS),
    out: Path = ROOT / "docs" / "results",
) -> None:
    """Every variant × dataset × seed on the TRAIN splits; prints and writes the table."""
    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        raise typer.BadParameter(f"unknown variant(s) {unknown}", param_hint="--variants")
    chosen += list(BASELINES)
    tasks = [(str(data_root), ds, v, s) for v in chosen for ds in DATASETS for s in range(seeds)]
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(_task, *t) for t in tasks]
        for fut in tqdm(as_completed(futures), total=len(futures), unit="fit"):
            runs.append(fut.result())
    runs.sort(key=lambda r: (chosen.index(r["variant"]), DATASETS.index(r["dataset"]), r["seed"]))
    table = _table(runs, chosen, DATASETS)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "protocol": "TRAIN splits clustered, k = #classes, TRAIN labels used only for scoring",
        "base_config": asdict(EMTCConfig()),
        "variants": {v: VARIANTS.get(v, {}) for v in chosen},
        "seeds": seeds,
        "total_wall_seconds": time.perf_counter() - t0,
        "runs": runs,
    }
    (out / "emtc_design.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "emtc_design.md").write_text(table)
    typer.echo(table)


if __name__ == "__main__":
    typer.run(main)
