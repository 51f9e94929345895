"""Score and calibration ablation on SMD: the table in docs/ccm_tad.md.

    python bench/score_ablation.py --data ../shared/data/SMD --out runs/ablation --jobs 2

For each machine: fit the model (`tad train` defaults) and keep its per-channel validation and
test errors after 1, 3 and 10 epochs (fixed counts here, to show how the score changes with
training), then compare candidate scores by mean per-machine best F1 (**oracle** threshold,
point-wise) and mean VUS-PR, and the label-free alarms of the chosen score under calibration
variants. No test label chooses anything: the table only reports. Errors are cached under
OUT/errors (delete them to refit).
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.offline import accumulate_series, alarm_spans, span_predictions  # noqa: E402
from detector.pvalue import TailReference  # noqa: E402
from detector.score import ChannelScore  # noqa: E402
from model_training.alarm_metrics import alarm_report  # noqa: E402
from model_training.baselines import scale_like_bundle  # noqa: E402
from model_training.calibrate import CalibrationRule, calibrate, evidence  # noqa: E402
from model_training.cli import load_entities  # noqa: E402
from model_training.metrics import best_f1, find_period, point_prf, vus_pr  # noqa: E402

CHECKPOINTS = (1, 3, 10)
CALIBRATIONS = {  # label-free variants: (α, adapt_points)
    "α 0.01, no adaptation": (0.01, 0),
    "α 0.05, no adaptation": (0.05, 0),
    "α 0.01, adaptation 2000": (0.01, 2000),
    "α 0.05, adaptation 2000 (default)": (0.05, 2000),
}


def _fit_errors(data: str, name: str, out: str) -> str:
    """Per-channel squared errors on validation and test after each checkpoint epoch."""
    import torch

    from model_training.clustering import cluster_channels
    from model_training.model import CCMTAD, ModelConfig
    from model_training.train import TrainConfig, scale, window_errors, windows_of

    ent = load_entities("smd", Path(data), [name])[0]
    cfg = TrainConfig()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)
    train = ent.train.astype(np.float64)
    n_fit = int(len(train) * (1 - cfg.val_fraction))
    lo, hi = train[:n_fit].min(0), train[:n_fit].max(0)
    rng = np.where(hi > lo, hi - lo, 1.0)
    x = torch.from_numpy(scale(train, lo, rng, cfg.clip))
    test = torch.from_numpy(scale(np.asarray(ent.test, np.float64), lo, rng, cfg.clip))
    clusters = cluster_channels(train[:n_fit], None, cfg.max_clusters, cfg.seed)
    model = CCMTAD(
        ModelConfig(
            n_channels=train.shape[1],
            clusters=clusters.tolist(),
            window_size=cfg.window_size,
            d_model=cfg.d_model,
            expansion=cfg.expansion,
            norm=cfg.norm,
        )
    )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    wins = windows_of(x[:n_fit], cfg.window_size)
    val_w = windows_of(x[n_fit - cfg.window_size + 1 :], cfg.window_size)
    test_w = windows_of(test, cfg.window_size)
    arrays: dict[str, np.ndarray] = {}
    for epoch in range(1, max(CHECKPOINTS) + 1):
        model.train()
        order = torch.randperm(len(wins), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            w = wins[order[i : i + cfg.batch_size]]
            loss = torch.nn.functional.mse_loss(model(w), w[:, -1, :])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch in CHECKPOINTS:
            arrays[f"val{epoch}"] = window_errors(model, val_w).astype(np.float32)
            arrays[f"test{epoch}"] = window_errors(model, test_w).astype(np.float32)
    np.savez(out, **arrays)
    return name


def candidate_scores(
    train: np.ndarray, test: np.ndarray, val_err: np.ndarray, test_err: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(validation, test) scores of each candidate; test errors start at the window's end."""
    from model_training.train import nominal_subspace

    n_fit, scale = scale_like_bundle(train, 0.2, 4.0)
    x = scale(train)
    fit, val, tst = x[:n_fit], x[n_fit:], scale(test)
    e_test = np.full(tst.shape, np.nan)
    e_test[len(tst) - len(test_err) :] = test_err
    center, basis = nominal_subspace(fit, 0.95)
    none = np.zeros((0, fit.shape[1]))
    sd = np.maximum(fit.std(0), 1e-3)
    raw = {
        "model error, mean (paper)": (val_err.mean(1), e_test.mean(1)),
        "model error, per-channel normalised": _hybrid(val_err, val, e_test, tst, center, none, 0),
        "PCA residual": _pca(val, tst, center, basis, normalised=False),
        "PCA residual, per-channel normalised": _pca(val, tst, center, basis, normalised=True),
        "distance from training mean": (
            ((val - fit.mean(0)) ** 2).mean(1),
            ((tst - fit.mean(0)) ** 2).mean(1),
        ),
        "z-distance from training mean": (
            (((val - fit.mean(0)) / sd) ** 2).mean(1),
            (((tst - fit.mean(0)) / sd) ** 2).mean(1),
        ),
        "hybrid: normalised error + normalised PCA residual (default)": _hybrid(
            val_err, val, e_test, tst, center, basis, 1
        ),
        "normalised error + distance from mean": _hybrid(
            val_err, val, e_test, tst, fit.mean(0), none, 1
        ),
    }
    return raw


def _hybrid(
    val_err: np.ndarray,
    val: np.ndarray,
    e_test: np.ndarray,
    tst: np.ndarray,
    center: np.ndarray,
    basis: np.ndarray,
    with_deviation: int,
) -> tuple[np.ndarray, np.ndarray]:
    s = ChannelScore.hybrid(val_err, val, center, basis)
    if not with_deviation:
        s = ChannelScore("hybrid", s.error_weight, s.deviation_weight * 0, center, basis)
    return s.score(val_err, val), s.score(e_test, tst)


def _pca(
    val: np.ndarray, tst: np.ndarray, center: np.ndarray, basis: np.ndarray, normalised: bool
) -> tuple[np.ndarray, np.ndarray]:
    s = ChannelScore.hybrid(np.zeros_like(val), val, center, basis)
    w = s.deviation_weight if normalised else np.ones(len(center))
    s = ChannelScore("hybrid", np.zeros(len(center)), w, center, basis)
    return s.score(np.zeros_like(val), val), s.score(np.zeros_like(tst), tst)


def label_free(
    labels: np.ndarray, val: np.ndarray, test: np.ndarray, alpha: float, adapt: int
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """(predictions, spans, alarms, in alarm > half the time) of the bundle's rule."""
    rule = CalibrationRule(alpha=alpha, adapt_points=adapt)
    h = calibrate(val, rule)["threshold"]
    scored = ~np.isnan(test)
    beta = np.zeros(len(test))
    beta[scored] = evidence(test[scored], TailReference.fit(val), rule)
    spans = alarm_spans(accumulate_series(beta, rule.delta, scored), beta, h)
    preds = span_predictions(spans, len(test))
    return preds, spans, len(spans), bool(preds.mean() > 0.5)


def main(
    data: Annotated[Path, typer.Option()] = Path("../shared/data/SMD"),
    out: Annotated[Path, typer.Option()] = Path("runs/ablation"),
    jobs: int = 2,
) -> None:
    from tqdm import tqdm

    (out / "errors").mkdir(parents=True, exist_ok=True)
    entities = load_entities("smd", data, None)
    todo = [e.name for e in entities if not (out / "errors" / f"{e.name}.npz").exists()]
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(_fit_errors, str(data), n, str(out / "errors" / f"{n}.npz")) for n in todo
        ]
        for f in tqdm(futures, desc="fit"):
            f.result()
    rank: dict[tuple[int, str], list[tuple[float, float]]] = {}
    lf: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]]] = {}
    for ent in tqdm(entities, desc="score"):
        z = np.load(out / "errors" / f"{ent.name}.npz", allow_pickle=False)
        labels, period = np.asarray(ent.test_labels), find_period(ent.test[:, 0])
        for epoch in CHECKPOINTS:
            val_err, test_err = z[f"val{epoch}"].astype(np.float64), z[f"test{epoch}"]
            cands = candidate_scores(ent.train, ent.test, val_err, test_err.astype(np.float64))
            for name, (v, t) in cands.items():
                filled = np.where(np.isnan(t), np.nanmin(t), t)
                rank.setdefault((epoch, name), []).append(
                    (best_f1(labels, t).f1, vus_pr(labels, filled, sliding_window=period))
                )
                if epoch == 3 and name.endswith("(default)"):
                    for cal, (alpha, adapt) in CALIBRATIONS.items():
                        preds, spans, n, over = label_free(labels, v, t, alpha, adapt)
                        lf.setdefault(cal, []).append((labels, preds, spans, n, over))
    print(ablation_tables(rank, lf, len(entities)))


def ablation_tables(
    rank: dict[tuple[int, str], list[tuple[float, float]]],
    lf: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]]],
    n: int,
) -> str:
    names = list(dict.fromkeys(name for _, name in rank))
    head = " | ".join(f"epoch {e}" for e in CHECKPOINTS)
    lines = [
        f"SMD, {n} machines: mean best F1 (**oracle**, point-wise) / mean VUS-PR",
        "",
        f"| score | {head} |",
        "|---" * (len(CHECKPOINTS) + 1) + "|",
    ]
    for name in names:
        cells = [
            f"{np.mean([a for a, _ in rank[(e, name)]]):.3f} / "
            f"{np.mean([b for _, b in rank[(e, name)]]):.3f}"
            for e in CHECKPOINTS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Label-free alarms of the default score (epoch 3), machines concatenated:",
        "",
        "| calibration | F1 | P | R | alarm precision | segment recall | never alarmed "
        "| > half in alarm |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cal, rows in lf.items():
        prf = point_prf(np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows]))
        reps = [alarm_report(r[0], r[2]) for r in rows]
        alarms = sum(q.alarms for q in reps)
        true = sum(round((q.alarm_precision or 0) * q.alarms) for q in reps)
        segs = sum(q.segments for q in reps)
        found = sum(q.segments_detected for q in reps)
        lines.append(
            f"| {cal} | {prf.f1:.3f} | {prf.precision:.3f} | {prf.recall:.3f} "
            f"| {true / max(alarms, 1):.3f} | {found / max(segs, 1):.3f} "
            f"| {sum(r[3] == 0 for r in rows)} | {sum(r[4] for r in rows)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    typer.run(main)
