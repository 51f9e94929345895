"""Train CCM-TAD on nominal data and export a bundle — top to bottom, nanoGPT style.

    split 80/20 in time → scale → cluster channels → fit (Adam, MSE on the last point)
    → keep the epoch with the lowest validation loss → validation losses → α, h → export.

Nothing here looks at labels: the epoch kept, the clusters and the alarm parameters all come
from the nominal data.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from model_training.calibrate import CalibrationRule, calibrate
from model_training.clustering import cluster_channels
from model_training.model import CCMTAD, ModelConfig


@dataclass
class TrainConfig:
    window_size: int = 24
    d_model: int = 128
    expansion: int = 5
    dropout: float = 0.0
    norm: str = "layer"  # "batch" is the paper's; see docs/ccm_tad.md for why layer
    norm_eps: float = 1e-5
    n_clusters: int | None = None  # None: chosen by silhouette
    max_clusters: int = 10
    epochs: int = 30
    batch_size: int = 512
    lr: float = 1e-3
    lr_decay_after: int = 3  # base rate for epochs 0..3, then × lr_decay per epoch
    lr_decay: float = 0.9
    val_fraction: float = 0.2
    clip: float = 4.0
    seed: int = 42
    device: str = "cpu"
    threads: int = 1
    alpha: float = 0.01
    false_alarm_rate: float = 1e-4
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    model: CCMTAD
    scale_min: np.ndarray  # [C]
    scale_range: np.ndarray  # [C]
    clusters: np.ndarray  # [C]
    val_losses: np.ndarray  # [n_val] time-ordered
    alarm: dict[str, float]
    history: list[dict[str, float]]
    best_epoch: int
    train_seconds: float
    fingerprint: str


def scale(x: np.ndarray, lo: np.ndarray, rng: np.ndarray, clip: float) -> np.ndarray:
    """Same transform as `detector.online.Calibration.scale`: [−1, 1], clipped, float32."""
    return np.clip((x - lo) / rng * 2.0 - 1.0, -clip, clip).astype(np.float32)


def windows_of(series: torch.Tensor, size: int) -> torch.Tensor:
    """All windows of a [T, C] series as a view [T − size + 1, size, C]."""
    return series.unfold(0, size, 1).transpose(1, 2)


def window_losses(model: CCMTAD, series: torch.Tensor, size: int, batch: int = 4096) -> np.ndarray:
    """Per-window MSE of the last point, eval mode: [T − size + 1]."""
    model.eval()
    wins = windows_of(series, size)
    out = []
    with torch.no_grad():
        for i in range(0, len(wins), batch):
            w = wins[i : i + batch]
            out.append(((model(w) - w[:, -1, :]) ** 2).mean(dim=1))
    return torch.cat(out).double().cpu().numpy()


def train(data: np.ndarray, cfg: TrainConfig) -> TrainResult:
    """Fit on nominal data [T, C]; returns the model and everything the bundle needs."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    data = np.asarray(data, np.float64)
    fingerprint = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()

    # 1. time-ordered split; scaler and clusters from the fit part only
    n_fit = int(len(data) * (1 - cfg.val_fraction))
    fit, size = data[:n_fit], cfg.window_size
    lo, hi = fit.min(axis=0), fit.max(axis=0)
    rng = np.where(hi > lo, hi - lo, 1.0)
    scaled = torch.from_numpy(scale(data, lo, rng, cfg.clip)).to(cfg.device)
    clusters = cluster_channels(fit, cfg.n_clusters, cfg.max_clusters, cfg.seed)

    # 2. windows: training windows end inside the fit part; validation windows end in the
    #    validation part, with the last L − 1 fit points as their context
    train_windows = windows_of(scaled[:n_fit], size)  # [N, L, C]
    val_series = scaled[n_fit - size + 1 :]

    # 3. model and optimiser
    model = CCMTAD(
        ModelConfig(
            data.shape[1],
            clusters.tolist(),
            size,
            cfg.d_model,
            cfg.expansion,
            cfg.dropout,
            cfg.norm,
            cfg.norm_eps,
        )
    ).to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: 1.0 if e <= cfg.lr_decay_after else cfg.lr_decay ** (e - cfg.lr_decay_after)
    )
    gen = torch.Generator().manual_seed(cfg.seed)

    # 4. fit, keeping the state with the lowest validation loss
    history: list[dict[str, float]] = []
    best_loss, best_epoch, best_state = float("inf"), -1, None
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
        val = float(window_losses(model, val_series, size).mean())
        history.append({"epoch": epoch, "train_loss": total / len(order), "val_loss": val})
        bar.set_postfix(train=f"{total / len(order):.5f}", val=f"{val:.5f}")
        if val < best_loss:
            best_loss, best_epoch = val, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)

    # 5. calibration losses and label-free alarm parameters
    val_losses = window_losses(model, val_series, size)
    alarm = calibrate(val_losses, CalibrationRule(cfg.alpha, cfg.false_alarm_rate, seed=cfg.seed))
    return TrainResult(
        model.eval().cpu(),
        lo,
        rng,
        clusters,
        val_losses,
        alarm,
        history,
        best_epoch,
        time.perf_counter() - t0,
        fingerprint,
    )


def config_dict(cfg: TrainConfig) -> dict[str, Any]:
    return asdict(cfg)


def train_and_export(
    data: np.ndarray,
    channel_names: list[str],
    out: Path,
    cfg: TrainConfig,
    name: str,
    version: str | None = None,
) -> Path:
    """Train, then write a checked bundle to `out`."""
    from model_training.export import export_bundle

    result = train(data, cfg)
    return export_bundle(result, cfg, channel_names, out, name, version)
