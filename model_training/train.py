"""Train CCM-TAD on nominal data and export a bundle — top to bottom, nanoGPT style.

    split 80/20 in time → channel types → scale → cluster channels → PCA of the fit part →
    fit (Adam, MSE on the last point) → after each epoch, how well the score separates
    synthetic faults injected into validation windows; keep the best epoch, stop after
    `patience` epochs without gain → the score (with `score="auto"`, the candidate that
    separates the injected faults best) → validation scores → α, h → export.

Nothing here looks at labels: the epoch kept, the clusters, the score and its weights and the
alarm parameters all come from the nominal data (model_training.synthetic).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from detector.score import CANDIDATE_KINDS, ChannelScore, ScoreKind
from detector.stream import WINDOW_SIZE
from model_training.calibrate import (
    MIN_CALIBRATION_POINTS,
    CalibrationRule,
    CalibrationSizeError,
    calibrate,
    calibration_warning,
    evidence_scores,
)
from model_training.channel_types import ChannelTypes, channel_types
from model_training.clustering import cluster_channels
from model_training.model import CCMTAD, ModelConfig
from model_training.synthetic import inject_faults, separation_auc


@dataclass
class TrainConfig:
    window_size: int = WINDOW_SIZE
    d_model: int = 128
    expansion: int = 5
    dropout: float = 0.0
    norm: str = "layer"  # "batch" is the paper's; see docs/ccm_tad.md for why layer
    norm_eps: float = 1e-5
    n_clusters: int | None = None  # None: chosen by silhouette
    max_clusters: int = 10
    epochs: int = 30  # at most; training stops earlier (patience)
    patience: int = 3  # epochs without a better selection criterion before stopping
    select: str = "synthetic"  # "synthetic" (fault separation, label-free) | "val_loss"
    # "auto": the candidate (CANDIDATE_KINDS) separating injected faults best, per entity; it
    # did not beat the fixed hybrid on SMD and MSL (docs/ccm_tad.md), so hybrid is the default
    score: ScoreKind | Literal["auto"] = "hybrid"
    # flags and constant channels are context: model input, bounded in the score (detector.score)
    context_channels: bool = True
    pca_variance: float = 0.95  # share of the fit part's variance the nominal subspace keeps
    batch_size: int = 512
    lr: float = 1e-3
    lr_decay_after: int = 3  # base rate for epochs 0..3, then × lr_decay per epoch
    lr_decay: float = 0.9
    val_fraction: float = 0.2
    clip: float = 4.0
    seed: int = 42
    device: str = "cpu"
    threads: int = 1
    alpha: float = CalibrationRule.alpha
    false_alarms_per_10k: float = CalibrationRule.false_alarms_per_10k  # the alarm budget
    min_alarm_points: float = CalibrationRule.min_alarm_points  # h ≥ this many top evidences
    max_alarm_points: float = CalibrationRule.max_alarm_points  # h_validation ≤ this many
    adapt_points: int = CalibrationRule.adapt_points  # drift level horizon (0: off)
    median_points: int = CalibrationRule.median_points  # running median the evidence reads
    rebaseline_after_points: int = CalibrationRule.rebaseline_after_points  # 0: never
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    model: CCMTAD
    scale_min: np.ndarray  # [C]
    scale_range: np.ndarray  # [C]
    clusters: np.ndarray  # [C]
    val_losses: np.ndarray  # [n_val] time-ordered scores of the validation points
    channel_score: ChannelScore
    alarm: dict[str, float]
    history: list[dict[str, float]]
    best_epoch: int
    train_seconds: float
    fingerprint: str
    warnings: list[str] = field(default_factory=list)
    channel_types: ChannelTypes | None = None
    score_selection: dict[str, float] = field(default_factory=dict)  # fault AUC per candidate


def scale(x: np.ndarray, lo: np.ndarray, rng: np.ndarray, clip: float) -> np.ndarray:
    """Same transform as `detector.calibration.Calibration.scale`: [−1, 1], clipped, float32."""
    return np.clip((x - lo) / rng * 2.0 - 1.0, -clip, clip).astype(np.float32)


def windows_of(series: torch.Tensor, size: int) -> torch.Tensor:
    """All windows of a [T, C] series as a view [T − size + 1, size, C]."""
    return series.unfold(0, size, 1).transpose(1, 2)


def window_errors(model: CCMTAD, wins: torch.Tensor, batch: int = 4096) -> np.ndarray:
    """Squared errors of each window's last point, eval mode: [N, L, C] → [N, C] float64."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(wins), batch):
            w = wins[i : i + batch]
            out.append((model(w) - w[:, -1, :]) ** 2)
    return torch.cat(out).double().cpu().numpy()


def nominal_subspace(
    fit_scaled: np.ndarray, variance: float, sensor: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(center [C], basis [k, C]): PCA of the scaled fit part keeping `variance` of it, fitted
    on the `sensor` channels ([C] bool; all when None) with zero weight on the others."""
    from sklearn.decomposition import PCA

    x = np.asarray(fit_scaled, np.float64)
    center = x.mean(axis=0)
    keep = np.ones(x.shape[1], bool) if sensor is None else np.asarray(sensor, bool)
    xs = x[:, keep]
    if xs.shape[1] < 2 or len(xs) < 3 or not (xs.std(axis=0) > 0).any():
        return center, np.zeros((0, x.shape[1]))
    pca = PCA(n_components=variance, svd_solver="full").fit(xs)
    basis = np.zeros((pca.n_components_, x.shape[1]))
    basis[:, keep] = pca.components_
    return center, basis


def fit_score(
    kind: ScoreKind,
    val_errors: np.ndarray,
    val_points: np.ndarray,
    center: np.ndarray,
    basis: np.ndarray,
    constant: np.ndarray | None = None,
    context: np.ndarray | None = None,
) -> ChannelScore:
    """A score of the given kind fitted on the validation period (detector.score)."""
    return ChannelScore.fit(kind, val_errors, val_points, center, basis, constant, context)


def window_scores(model: CCMTAD, score: ChannelScore, wins: np.ndarray) -> np.ndarray:
    """Scores [N] of windows [N, L, C] float32."""
    w = torch.from_numpy(wins).to(next(model.parameters()).device)
    return score.score(window_errors(model, w), wins[:, -1, :])


def train(
    data: np.ndarray,
    cfg: TrainConfig,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Fit on nominal data [T, C]; returns the model and everything the bundle needs
    (`on_epoch`: called with each epoch's figures, e.g. a training job's progress)."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    data = np.asarray(data, np.float64)
    fingerprint = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()

    # 1. time-ordered split; scaler and clusters from the fit part only
    n_fit = int(len(data) * (1 - cfg.val_fraction))
    if n_fit < 2 * cfg.window_size or len(data) - n_fit < MIN_CALIBRATION_POINTS:
        need = max(
            int(np.ceil(2 * cfg.window_size / (1 - cfg.val_fraction))),
            int(np.ceil(MIN_CALIBRATION_POINTS / cfg.val_fraction)),
        )
        raise CalibrationSizeError(
            f"{len(data)} nominal rows; training needs at least {need} (the last "
            f"{cfg.val_fraction:.0%} calibrate the alarms and need {MIN_CALIBRATION_POINTS})"
        )
    fit, size = data[:n_fit], cfg.window_size
    types = channel_types(fit, [str(j) for j in range(data.shape[1])])
    lo, hi = fit.min(axis=0), fit.max(axis=0)
    rng = np.where(hi > lo, hi - lo, 1.0)
    scaled = torch.from_numpy(scale(data, lo, rng, cfg.clip)).to(cfg.device)
    points = (data - lo) / rng * 2.0 - 1.0  # [T, C] unclipped: the score's deviation term
    clusters = cluster_channels(fit, cfg.n_clusters, cfg.max_clusters, cfg.seed)

    # 2. windows: training windows end inside the fit part; validation windows end in the
    #    validation part, with the last L − 1 fit points as their context
    train_windows = windows_of(scaled[:n_fit], size)  # [N, L, C]
    val_series = scaled[n_fit - size + 1 :]
    val_windows = windows_of(val_series, size)  # [n_val, L, C]
    note = calibration_warning(len(val_windows), _rule(cfg))  # refuses a tiny validation set
    val_last = points[n_fit:]  # [n_val, C] unclipped scaled validation points
    const = types.constant_mask
    ctx = types.context_mask if cfg.context_channels else None
    stop_kind: ScoreKind = "hybrid" if cfg.score == "auto" else cfg.score
    sensor = None if ctx is None else ~ctx
    center, basis = nominal_subspace(scaled[:n_fit].cpu().numpy(), cfg.pca_variance, sensor)
    clean, faulty = inject_faults(val_windows.cpu().numpy(), seed=cfg.seed, clip=cfg.clip)

    # 3. model and optimiser
    model = CCMTAD(
        ModelConfig(
            n_channels=data.shape[1],
            clusters=clusters.tolist(),
            window_size=size,
            d_model=cfg.d_model,
            expansion=cfg.expansion,
            dropout=cfg.dropout,
            norm=cfg.norm,
            norm_eps=cfg.norm_eps,
        )
    ).to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: 1.0 if e <= cfg.lr_decay_after else cfg.lr_decay ** (e - cfg.lr_decay_after)
    )
    gen = torch.Generator().manual_seed(cfg.seed)

    # 4. fit; keep the epoch with the best label-free criterion, stop after `patience` more
    history: list[dict[str, float]] = []
    best_key, best_epoch, best_state = -float("inf"), -1, None
    bar = tqdm(range(cfg.epochs), desc="train", disable=not cfg.progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train_windows), generator=gen).to(cfg.device)
        total = 0.0
        for i in range(0, len(order), cfg.batch_size):
            w = train_windows[order[i : i + cfg.batch_size]]
            if len(w) < 2:  # BatchNorm needs two rows
                continue
            loss = torch.nn.functional.mse_loss(model(w), w[:, -1, :])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(w)
        sched.step()
        val_err = window_errors(model, val_windows)
        score = fit_score(stop_kind, val_err, val_last, center, basis, const, ctx)
        auc = separation_auc(partial(window_scores, model, score), clean, faulty)
        val = float(val_err.mean())
        history.append(
            {"epoch": epoch, "train_loss": total / len(order), "val_loss": val, "fault_auc": auc}
        )
        bar.set_postfix(train=f"{total / len(order):.5f}", val=f"{val:.5f}", auc=f"{auc:.4f}")
        if on_epoch is not None:
            on_epoch(history[-1])
        key = auc if cfg.select == "synthetic" else -val
        if key > best_key:
            best_key, best_epoch = key, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)

    # 5. the score (the candidate separating the injected faults best, with score="auto"),
    #    validation scores and label-free alarm parameters
    val_err = window_errors(model, val_windows)
    kinds = CANDIDATE_KINDS if cfg.score == "auto" else (cfg.score,)
    aucs = {
        k: separation_auc(
            partial(
                window_scores, model, fit_score(k, val_err, val_last, center, basis, const, ctx)
            ),
            clean,
            faulty,
        )
        for k in kinds
    }
    chosen = max(kinds, key=lambda k: aucs[k])  # ties: the earlier candidate
    score = fit_score(chosen, val_err, val_last, center, basis, const, ctx)
    val_scores, rule = evidence_scores(score.score(val_err, val_last), _rule(cfg))  # medians
    flat = (
        f"a running median of {cfg.median_points} scores flattens the validation period (a "
        "score flat but for short spikes): the evidence reads the raw score"
        if rule.median_points != cfg.median_points
        else None
    )
    alarm = calibrate(val_scores, rule)
    return TrainResult(
        model=model.eval().cpu(),
        scale_min=lo,
        scale_range=rng,
        clusters=clusters,
        val_losses=val_scores,
        channel_score=score,
        alarm=alarm,
        history=history,
        best_epoch=best_epoch,
        train_seconds=time.perf_counter() - t0,
        fingerprint=fingerprint,
        warnings=[w for w in (note, flat) if w],
        channel_types=types,
        score_selection={str(k): v for k, v in aucs.items()},
    )


def _rule(cfg: TrainConfig) -> CalibrationRule:
    return CalibrationRule(
        alpha=cfg.alpha,
        false_alarms_per_10k=cfg.false_alarms_per_10k,
        min_alarm_points=cfg.min_alarm_points,
        max_alarm_points=cfg.max_alarm_points,
        seed=cfg.seed,
        adapt_points=cfg.adapt_points,
        median_points=cfg.median_points,
        rebaseline_after_points=cfg.rebaseline_after_points,
    )
