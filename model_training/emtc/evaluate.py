"""UEA clustering evaluation: EMTC vs two baselines vs the paper, over several seeds.

Why here and not in the CLI: the service and tests can call `evaluate_dataset` directly; the CLI
only adds argument parsing, a progress bar and file output. Protocol (the paper's): cluster the
TEST split (its N), k = number of classes, labels used only for scoring, never for choosing an
epoch or a hyperparameter; the reported figure is the last epoch (EMTC stops by its label-free
convergence rule, `EMTCConfig.stop_patience`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from model_training.emtc.config import EMTCConfig
from model_training.emtc.metrics import score_clustering
from model_training.emtc.minirocket import minirocket_kmeans
from model_training.emtc.normalise import zscore_per_variate
from model_training.emtc.ts_format import load_ts, to_fixed_length

# EMTC paper, Table 2 (ACC, F1); datasets absent from the paper map to None.
PAPER: dict[str, tuple[float, float]] = {
    "BasicMotions": (0.9083, 0.9057),
    "Epilepsy": (0.5556, 0.5519),
    "FingerMovements": (0.5967, 0.5892),
    "RacketSports": (0.4715, 0.4657),
    "NATOPS": (0.6185, 0.6205),
    "HandMovementDirection": (0.4640, 0.3737),
    "Heartbeat": (0.7463, 0.6134),
    "StandWalkJump": (0.7556, 0.7382),
    "Cricket": (0.5972, 0.6317),
}
# The six UEA sets in ../shared/data/UEA that `make emtc` and the design study run on.
UEA_SIX = (
    "BasicMotions",
    "Epilepsy",
    "FingerMovements",
    "RacketSports",
    "AtrialFibrillation",
    "JapaneseVowels",
)
METRICS = ("acc", "f1", "nmi", "ari")
METHODS = ("emtc", "no_ivm", "kmeans_raw", "minirocket")  # the deep ones need torch


def find_split(data_root: Path, name: str, split: str = "TEST") -> Path:
    """`<root>/<Name>/<Name>_<split>.ts[.gz]` (standard UEA layout)."""
    for suffix in (".ts.gz", ".ts"):
        path = data_root / name / f"{name}_{split}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"no {name}_{split}.ts(.gz) under {data_root / name}")


def load_uea(data_root: Path, name: str, split: str = "TEST") -> dict[str, Any]:
    """Load one split → {"X": [N, T, D] float64, "y": [N] str, "lengths": [N] int}."""
    series, labels, _ = load_ts(find_split(data_root, name, split))
    if labels.size == 0:
        raise ValueError(f"{name}_{split} has no class labels; cannot be scored")
    lengths = np.array([s.shape[0] for s in series])
    return {"X": to_fixed_length(series), "y": labels, "lengths": lengths}


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean and population std of each metric over seeds."""
    out: dict[str, float] = {}
    for m in METRICS:
        vals = np.array([r[m] for r in runs], dtype=np.float64)
        out[f"{m}_mean"], out[f"{m}_std"] = float(vals.mean()), float(vals.std())
    return out


def kmeans_raw(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Baseline: k-means on the per-variate z-scored series, flattened to [N, T·D]."""
    flat = zscore_per_variate(x.astype(np.float32)).reshape(len(x), -1)
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(flat)


def evaluate_dataset(
    data_root: Path,
    name: str,
    seeds: int,
    config: EMTCConfig,
    on_fit: Callable[[str, int], None] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    methods: tuple[str, ...] = METHODS,
) -> dict[str, Any]:
    """Run `methods` (EMTC, EMTC without IVM, k-means on the raw series, MiniRocket features +
    k-means) for `seeds` seeds on one dataset's TEST split, in one run.

    `on_fit(method, seed)` is called after each fit (for a progress bar); `progress` is passed on
    to `fit_predict` (per-epoch records).
    """
    t_start = time.perf_counter()
    data = load_uea(data_root, name)
    x, y = data["X"], data["y"]
    n, t, d = x.shape
    k = len(np.unique(y))
    record: dict[str, Any] = {
        "dataset": name,
        "N": n,
        "T": t,
        "D": d,
        "k": k,
        "length_min": int(data["lengths"].min()),
        "length_max": int(data["lengths"].max()),
        "paper_acc": PAPER.get(name, (None, None))[0],
        "paper_f1": PAPER.get(name, (None, None))[1],
    }
    for method, use_ivm in (("emtc", True), ("no_ivm", False)):
        if method not in methods:
            continue
        from model_training.emtc.train import fit_predict  # torch, only when asked for

        runs: list[dict[str, Any]] = []
        for seed in range(seeds):
            cfg = replace(config, seed=seed, use_ivm=use_ivm)
            t0 = time.perf_counter()
            res = fit_predict(x, k, cfg, progress=progress)
            scores = score_clustering(y, res.labels)
            last = res.history[-1]
            runs.append(
                {
                    **scores,
                    "seed": seed,
                    "seconds": time.perf_counter() - t0,
                    "silhouette": res.silhouette,
                    "final_loss": last["loss"],
                    "epochs_trained": len(res.history),
                    "final_mask_ratio": last["mask_ratio"],
                }
            )
            if on_fit is not None:
                on_fit(method, seed)
        record[method] = {
            "runs": runs,
            **summarise(runs),
            "seconds_per_fit": float(np.mean([r["seconds"] for r in runs])),
            "epochs_mean": float(np.mean([r["epochs_trained"] for r in runs])),
        }
    if "kmeans_raw" in methods:
        raw_runs = [
            {**score_clustering(y, kmeans_raw(x, k, seed)), "seed": seed} for seed in range(seeds)
        ]
        record["kmeans_raw"] = {"runs": raw_runs, **summarise(raw_runs)}
    if "minirocket" in methods:
        mr_runs: list[dict[str, Any]] = []
        for seed in range(seeds):
            t0 = time.perf_counter()
            labels, _ = minirocket_kmeans(x.astype(np.float32), k, seed)
            mr_runs.append(
                {**score_clustering(y, labels), "seed": seed, "seconds": time.perf_counter() - t0}
            )
            if on_fit is not None:
                on_fit("minirocket", seed)
        record["minirocket"] = {
            "runs": mr_runs,
            **summarise(mr_runs),
            "seconds_per_fit": float(np.mean([r["seconds"] for r in mr_runs])),
        }
    record["wall_seconds"] = time.perf_counter() - t_start
    return record


def _pm(block: dict[str, Any] | None, metric: str) -> str:
    if block is None:
        return "not run"
    return f"{block[f'{metric}_mean']:.3f} ± {block[f'{metric}_std']:.3f}"


def markdown_table(records: list[dict[str, Any]]) -> str:
    """One row per dataset: shape, paper ACC/F1, EMTC, the peer and the baselines, wall time."""
    head = (
        "| dataset | N | T | D | k | paper ACC | paper F1 | EMTC ACC | EMTC F1 | EMTC NMI "
        "| EMTC ARI | MiniRocket + k-means ACC | MiniRocket + k-means F1 | k-means raw ACC "
        "| k-means raw F1 | no-IVM ACC | no-IVM F1 | wall s (all) | s / EMTC fit "
        "| EMTC epochs | s / MiniRocket fit |"
    )
    sep = "|" + "---|" * 21
    rows = [head, sep]
    for r in records:
        pa = "n/a" if r["paper_acc"] is None else f"{r['paper_acc']:.3f}"
        pf = "n/a" if r["paper_f1"] is None else f"{r['paper_f1']:.3f}"
        t = (
            str(r["T"])
            if r["length_min"] == r["length_max"]
            else (f"{r['T']} ({r['length_min']}–{r['length_max']})")
        )
        e, b, a, m = (r.get(key) for key in ("emtc", "kmeans_raw", "no_ivm", "minirocket"))
        e_s = "not run" if e is None else f"{e['seconds_per_fit']:.1f}"
        e_n = "not run" if e is None else f"{e['epochs_mean']:.0f}"
        m_s = "not run" if m is None else f"{m['seconds_per_fit']:.1f}"
        rows.append(
            f"| {r['dataset']} | {r['N']} | {t} | {r['D']} | {r['k']} | {pa} | {pf} "
            f"| {_pm(e, 'acc')} | {_pm(e, 'f1')} | {_pm(e, 'nmi')} | {_pm(e, 'ari')} "
            f"| {_pm(m, 'acc')} | {_pm(m, 'f1')} "
            f"| {_pm(b, 'acc')} | {_pm(b, 'f1')} | {_pm(a, 'acc')} | {_pm(a, 'f1')} "
            f"| {r['wall_seconds']:.0f} | {e_s} | {e_n} | {m_s} |"
        )
    return "\n".join(rows) + "\n\n" + mean_acc_line(records) + "\n"


def mean_acc_line(records: list[dict[str, Any]]) -> str:
    """Each method's ACC averaged over the datasets (the figure the README compares)."""
    names = {
        "minirocket": "MiniRocket + k-means",
        "emtc": "EMTC",
        "no_ivm": "no-IVM",
        "kmeans_raw": "k-means raw",
    }
    parts = [
        f"{label} {np.mean([r[m]['acc_mean'] for r in records]):.3f}"
        for m, label in names.items()
        if all(m in r for r in records)
    ]
    return f"Mean ACC over the {len(records)} datasets: " + ", ".join(parts) + "."
