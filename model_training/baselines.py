"""Simple detectors every quality table carries, fitted and calibrated like the bundle.

Each baseline is fitted on the same fit part of the nominal data as the bundle (the first
1 − val_fraction of it, min-max scaled to [−1, 1] like the score's deviation term, unclipped),
scores the validation part, and is calibrated label-free by the bundle's own rule (model_training.
calibrate): same α, δ, ε ratio, drift adaptation and h rule. So a row of the report compares
scores, never calibration tricks.

* ``pca`` — squared reconstruction error off the principal subspace keeping 95 % of the
  fit part's variance, mean over channels;
* ``pca_normalised`` — the same residual, each channel divided by its mean on validation (the
  hybrid score's second term alone: what the model adds to it shows in the difference);
* ``mean_distance`` — squared distance from the fit part's mean, mean over channels;
* ``z_mean`` / ``z_max`` — per-channel z-distance from the fit part's median (each channel
  divided by its standard deviation; a channel constant in training by the median channel's),
  squared, mean or max over channels;
* ``isolation_forest`` — scikit-learn IsolationForest (100 trees, seed 0), −score_samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest

BASELINES = ("pca", "pca_normalised", "mean_distance", "z_mean", "z_max", "isolation_forest")


@dataclass(frozen=True)
class BaselineScores:
    name: str
    validation: np.ndarray  # [n_val] time-ordered
    test: np.ndarray  # [n_test]


def scale_like_bundle(
    train: np.ndarray, val_fraction: float, clip: float
) -> tuple[int, Callable[[np.ndarray], np.ndarray]]:
    """(n_fit, scaler) with the trainer's min-max scaling of the fit part."""
    data = np.asarray(train, np.float64)
    n_fit = int(len(data) * (1 - val_fraction))
    lo, hi = data[:n_fit].min(axis=0), data[:n_fit].max(axis=0)
    rng = np.where(hi > lo, hi - lo, 1.0)

    def scale(x: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(x, np.float64) - lo) / rng * 2.0 - 1.0, -clip, clip)

    return n_fit, scale


def baseline_scores(
    train: np.ndarray, test: np.ndarray, val_fraction: float = 0.2, clip: float = np.inf
) -> list[BaselineScores]:
    """Validation and test scores of every baseline for one entity.

    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(size=(500, 3)).astype(np.float32)
    >>> test = np.r_[train[:50], train[:50] + 10]
    >>> out = {b.name: b for b in baseline_scores(train, test)}
    >>> all(bool(b.test[50:].min() > b.test[:50].max()) for b in out.values())
    True
    """
    n_fit, scale = scale_like_bundle(train, val_fraction, clip)
    x = scale(train)
    fit, val, tst = x[:n_fit], x[n_fit:], scale(test)
    out = []
    lively = fit.shape[1] > 1 and bool((fit.std(axis=0) > 0).any())
    pca = PCA(n_components=0.95, svd_solver="full").fit(fit) if lively else None

    def residual(z: np.ndarray) -> np.ndarray:
        if pca is None:
            return (z - fit.mean(axis=0)) ** 2
        d = z - pca.mean_
        return np.asarray((d - (d @ pca.components_.T) @ pca.components_) ** 2)

    r_val, r_test = residual(val), residual(tst)
    out.append(BaselineScores("pca", r_val.mean(axis=1), r_test.mean(axis=1)))
    per_channel = r_val.mean(axis=0)
    w = 1.0 / np.maximum(per_channel, 1e-3 * float(np.median(per_channel)) + 1e-12)
    out.append(BaselineScores("pca_normalised", (r_val * w).mean(axis=1), (r_test * w).mean(1)))
    mu = fit.mean(axis=0)
    out.append(
        BaselineScores(
            "mean_distance", ((val - mu) ** 2).mean(axis=1), ((tst - mu) ** 2).mean(axis=1)
        )
    )
    sd = fit.std(axis=0)
    live = sd > 0
    sd = np.where(live, sd, float(np.median(sd[live])) if live.any() else 1.0)
    med = np.median(fit, axis=0)
    z_val, z_test = ((val - med) / sd) ** 2, ((tst - med) / sd) ** 2
    out.append(BaselineScores("z_mean", z_val.mean(axis=1), z_test.mean(axis=1)))
    out.append(BaselineScores("z_max", z_val.max(axis=1), z_test.max(axis=1)))
    forest = IsolationForest(n_estimators=100, random_state=0).fit(fit)
    out.append(
        BaselineScores("isolation_forest", -forest.score_samples(val), -forest.score_samples(tst))
    )
    return out
