"""EMTC trainer: `fit_predict` is the pure-Python job API the service's worker thread calls.

Why it is written this way: the job runner calls it from a worker thread, so all randomness comes
from a local `torch.Generator` (parameter init, first-epoch random mask, batch order) and a seeded
sklearn KMeans; parameters are created on the meta device and initialised from that generator, so
torch's global RNG is never read or advanced. Thread count is the caller's business.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from model_training.emtc.config import EMTCConfig
from model_training.emtc.metrics import clustering_acc
from model_training.emtc.model import EMTC, emtc_losses, init_parameters
from model_training.emtc.normalise import zscore_per_variate

__all__ = [
    "ClusteringCancelled",
    "ClusteringResult",
    "EMTCConfig",
    "fit_predict",
    "zscore_per_variate",
]


class ClusteringCancelled(RuntimeError):
    """Raised inside `fit_predict` when the caller's `should_stop()` returns True."""


@dataclass
class ClusteringResult:
    """Output of `fit_predict`."""

    labels: np.ndarray  # [N] int cluster ids from the last epoch's representation
    representation: np.ndarray  # [N, H] fused representation F
    history: list[dict[str, float]]  # one dict per epoch (losses, mask statistics, seconds)
    silhouette: float | None  # of `representation` under `labels` (cosine); None if undefined
    config: dict[str, Any] = field(default_factory=dict)
    final_mask: np.ndarray | None = None  # [N, T, D] {0,1} mask of the last epoch (IVM only)


def _check_input(x: np.ndarray, n_clusters: int) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"X must be a numpy array, got {type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"X must have shape [N, T, D], got {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"X must be numeric, got dtype {x.dtype}")
    n, t, d = x.shape
    if t < 2 or d < 1:
        raise ValueError(f"need T >= 2 and D >= 1, got T={t}, D={d}")
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, int | np.integer):
        raise ValueError(f"n_clusters must be an int, got {n_clusters!r}")
    if not 2 <= n_clusters <= n:
        raise ValueError(f"need 2 <= n_clusters <= N, got n_clusters={n_clusters}, N={n}")
    if not np.all(np.isfinite(x)):
        raise ValueError("X contains NaN or inf; fill missing values first (to_fixed_length)")
    return x.astype(np.float32)


@torch.no_grad()
def _embed_all(model: EMTC, x: torch.Tensor, mask: torch.Tensor, bs: int) -> torch.Tensor:
    """Fused representation F [N, H] of the masked input X ⊙ M (inference pass)."""
    model.eval()
    reps = [
        model(x[s : s + bs], mask[s : s + bs], with_importance=False).fused
        for s in range(0, len(x), bs)
    ]
    model.train()
    return torch.cat(reps)


def _kmeans(rep: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    rep = rep / np.maximum(np.linalg.norm(rep, axis=1, keepdims=True), 1e-12)  # cosine geometry
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(rep)


def contra_weight(epoch: int, cfg: EMTCConfig) -> float:
    """L_contra's weight in 1-based `epoch`: 0 in warm-up, then a linear ramp to 1.

    >>> cfg = EMTCConfig(warmup_epochs=1, contra_ramp_epochs=4)
    >>> [contra_weight(e, cfg) for e in range(1, 7)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    after = epoch - cfg.warmup_epochs
    if after <= 0:
        return 0.0
    return min(1.0, after / cfg.contra_ramp_epochs) if cfg.contra_ramp_epochs else 1.0


class _Convergence:
    """The label-free stopping rule: pseudo-labels stable for `stop_patience` epochs.

    >>> rule = _Convergence(EMTCConfig(stop_patience=2, min_epochs=1))
    >>> [rule.update(np.array(y)) for y in ([0, 0, 1], [1, 1, 0], [1, 1, 0], [1, 0, 0])]
    [False, False, True, False]
    >>> [round(c, 3) for c in rule.changes]
    [1.0, 0.0, 0.0, 0.333]
    """

    def __init__(self, cfg: EMTCConfig) -> None:
        self.cfg = cfg
        self.changes: list[float] = []  # per epoch: fraction of labels changed vs the last
        self._prev: np.ndarray | None = None
        self._stable = 0

    def update(self, labels: np.ndarray) -> bool:
        """Record this epoch's pseudo-labels; True when training has converged."""
        change = 1.0 if self._prev is None else 1.0 - clustering_acc(self._prev, labels)
        self._prev = labels
        self.changes.append(change)
        self._stable = self._stable + 1 if change <= self.cfg.stop_label_change else 0
        return (
            self.cfg.stop_patience > 0
            and len(self.changes) >= self.cfg.min_epochs
            and self._stable >= self.cfg.stop_patience
        )


def fit_predict(
    X: np.ndarray,
    n_clusters: int,
    config: EMTCConfig | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ClusteringResult:
    """Train EMTC on X [N, T, D] and cluster it into `n_clusters` groups (last-epoch labels)."""
    cfg = config or EMTCConfig()
    cfg.validate()
    x_np = _check_input(X, n_clusters)
    if cfg.normalize:
        x_np = zscore_per_variate(x_np)
    n, t, d = x_np.shape
    device = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)  # CPU generator; draws are moved to device
    with torch.device("meta"):
        model = EMTC(
            d,
            cfg.hidden,
            cfg.ivm_hidden,
            cfg.d_k,
            cfg.ivm_depth,
            cfg.n_views,
            cfg.depth,
            cfg.kernel_size,
            cfg.use_ivm,
        )
    model.to_empty(device=device)
    init_parameters(model, gen)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x = torch.from_numpy(x_np).to(device)  # [N, T, D]
    if cfg.use_ivm:  # epoch 1: random mask, P(zero) = random_mask_ratio
        mask = (torch.rand((n, t, d), generator=gen) >= cfg.random_mask_ratio).float().to(device)
    else:
        mask = torch.ones((n, t, d), device=device)
    history: list[dict[str, float]] = []
    n_batches = math.ceil(n / cfg.batch_size)
    convergence = _Convergence(cfg)
    converged = False
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        rep = _embed_all(model, x, mask, cfg.batch_size)
        labels_np = _kmeans(
            rep.cpu().numpy(), n_clusters, cfg.seed * 1000 + epoch, cfg.kmeans_n_init
        )
        converged = convergence.update(labels_np)
        if converged:  # the labels this epoch would train on have settled: stop before it
            break
        labels = torch.from_numpy(labels_np).to(device)
        w_contra = contra_weight(epoch, cfg)
        perm = torch.randperm(n, generator=gen).to(device)
        next_mask = mask.clone()  # [N, T, D]; filled from this epoch's importance p
        sums = {"loss": 0.0, "contra": 0.0, "intra": 0.0, "inter": 0.0}
        for b in range(n_batches):
            if should_stop is not None and should_stop():
                raise ClusteringCancelled(f"cancelled at epoch {epoch}")
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            out = model(x[idx], mask[idx])
            parts = emtc_losses(out, x[idx], labels[idx], cfg.tau)
            loss = (
                w_contra * parts["contra"] + cfg.alpha * parts["intra"] + cfg.beta * parts["inter"]
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if out.importance is not None:  # M for the next epoch: [p ≥ ε] (Eq. 3)
                next_mask[idx] = (out.importance.detach() >= cfg.epsilon).float()
            sums["loss"] += loss.item() / n_batches
            for k in ("contra", "intra", "inter"):
                sums[k] += parts[k].item() / n_batches
        mask_change = float((next_mask != mask).float().mean())
        rec: dict[str, float] = {
            "epoch": epoch,
            "epochs": cfg.epochs,
            **sums,
            "mask_ratio": float(1.0 - mask.mean()),  # applied this epoch
            "mask_change": mask_change,  # fraction flipped for next epoch
            "label_change": convergence.changes[-1],  # pseudo-labels changed vs last epoch
            "seconds": time.perf_counter() - t0,
        }
        history.append(rec)
        if progress is not None:
            progress(dict(rec))
        mask = next_mask
    if not converged:  # on convergence `rep` is already the final model's representation
        rep = _embed_all(model, x, mask, cfg.batch_size)
    rep_np = rep.cpu().numpy().astype(np.float64)
    labels_np = _kmeans(rep_np, n_clusters, cfg.seed, cfg.final_kmeans_n_init)
    sil = None
    if 2 <= len(np.unique(labels_np)) < n:
        sil = float(silhouette_score(rep_np, labels_np, metric="cosine"))
    return ClusteringResult(
        labels=labels_np.astype(np.int64),
        representation=rep_np,
        history=history,
        silhouette=sil,
        config=asdict(cfg),
        final_mask=mask.cpu().numpy().astype(np.uint8) if cfg.use_ivm else None,
    )
