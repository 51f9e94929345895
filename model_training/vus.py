"""VUS-PR / VUS-ROC (Volume Under the Surface) exactly as the TSB-AD benchmark computes them.

Reference: Liu & Paparrizos, "The Elephant in the Room: Towards A Reliable Time-Series Anomaly
Detection Benchmark" (NeurIPS 2024), code ``TheDatumOrg/TSB-AD`` (PyPI ``TSB-AD`` 1.5):
``TSB_AD.evaluation.metrics.get_metrics(score, labels, slidingWindow, version="opt", thre=250)``
-> ``basic_metrics.generate_curve`` -> ``basic_metricor.RangeAUC_volume_opt``. That code loops
over buffer widths x thresholds x segments in Python; here the same numbers come from one rank
per point ("first threshold that flags it") plus cumulative sums, so a 700k-point series with
L=300 takes about a second instead of hours.

Definition (per buffer width ``w`` in ``0..L``, ``h = w // 2``), for each of the ``thresholds``
thresholds ``thr_j = sorted_desc(score)[linspace(0, n-1, thresholds).astype(int)[j]]`` and
prediction ``score >= thr_j``:

* soft label ``g_w``: 1 on labelled points; a point at distance ``d`` in ``1..h`` outside a
  segment gets ``sqrt(1 - d/w)`` per segment, summed and clipped at 1;
* ``TP = sum(g_w * pred)``, ``P_new = P + (TP - TP_on_labelled) / 2``,
  ``TPR = min(TP / P_new, 1) * existence``, where existence is the fraction of merged buffered
  segments ``[s-h, e+h]`` hit by any prediction; ``FPR = (#pred - TP) / (n - P_new)``;
  ``precision = TP / #pred``;
* ROC-AUC: trapezoids over ``(0,0), (FPR_j, TPR_j)..., (1,1)``; PR: ``sum(dTPR_j * prec_j)``
  starting from ``TPR = 0``.

VUS is the mean over ``w = 0..L``. TSB-AD chooses ``L`` with ``find_length_rank(data[:, 0],
rank=1)`` on the *input series* (first channel) -- pass that as ``sliding_window`` (use
:func:`find_period`) to reproduce the leaderboard; when omitted, ``find_period(scores)`` is used.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import argrelextrema

__all__ = ["DEFAULT_PERIOD", "find_period", "vus_pr", "vus_roc"]

DEFAULT_PERIOD = 125
"""Fallback window TSB-AD uses when the autocorrelation has no usable peak."""

_ACF_LAGS = 400
_ACF_BASE = 3
_ACF_MAX_POINTS = 20_000


def find_period(x: ArrayLike) -> int:
    """Dominant period by autocorrelation: TSB-AD's ``find_length_rank(x, rank=1)``.

    ACF (statsmodels ``acf(nlags=400, fft=True)`` semantics) of the first 20000 points; among the
    strict local maxima of ``acf[3:]`` take the highest; return its lag, or 125 when there is no
    peak or the peak's index in ``acf[3:]`` is outside ``[3, 300]``. A 2-D input uses column 0, as
    TSB-AD's benchmark scripts do; non-finite values are dropped (warm-up NaNs in a score).

    >>> find_period(np.sin(2 * np.pi * np.arange(2000) / 50))
    50
    >>> find_period(np.ones(500))
    125
    """
    arr = np.squeeze(np.asarray(x, dtype=np.float64))
    if arr.ndim == 2:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D or 2-D series, got shape {np.shape(x)}")
    arr = arr[np.isfinite(arr)][:_ACF_MAX_POINTS]
    n = arr.size
    if n < _ACF_BASE + 3:
        return DEFAULT_PERIOD
    centred = arr - arr.mean()
    nfft = 1 << int(2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, nfft)
    acov = np.fft.irfft(spectrum * spectrum.conj(), nfft)[: min(n, _ACF_LAGS + 1)] / n
    if not acov[0] > 0:
        return DEFAULT_PERIOD
    acf = (acov / acov[0])[_ACF_BASE:]
    peaks = argrelextrema(acf, np.greater)[0]
    if peaks.size == 0:
        return DEFAULT_PERIOD
    # TSB-AD takes the last entry of an ascending argsort: among equal maxima, the largest lag.
    best = int(peaks[np.argsort(acf[peaks], kind="stable")[-1]])
    if best < 3 or best > 300:
        return DEFAULT_PERIOD
    return best + _ACF_BASE


def vus_pr(
    labels: ArrayLike,
    scores: ArrayLike,
    sliding_window: int | None = None,
    version: Literal["opt", "opt_mem"] = "opt",
    thresholds: int = 250,
) -> float:
    """TSB-AD VUS-PR: range-based PR AUC averaged over buffer widths ``0..sliding_window``.

    The headline metric of TSB-AD because it does not reward point adjustment and tolerates a
    small lag between score and label. ``version`` "opt" and "opt_mem" are the same number in
    TSB-AD (they differ only in caching). NaN scores rank below every finite score. Raises
    ``ValueError`` when ``labels`` has no anomaly (the metric is undefined there).
    ``sliding_window=None`` means ``find_period(scores)``; see the module docstring.

    >>> y = np.r_[np.zeros(40), np.ones(10), np.zeros(50)]
    >>> vus_pr(y, y, sliding_window=8)
    1.0
    >>> late = np.r_[np.zeros(45), np.ones(10), np.zeros(45)]  # half the event, 5 points late
    >>> round(vus_pr(y, late, sliding_window=8), 3)
    0.443
    """
    return float(_vus_curves(labels, scores, sliding_window, version, thresholds)[0].mean())


def vus_roc(
    labels: ArrayLike,
    scores: ArrayLike,
    sliding_window: int | None = None,
    version: Literal["opt", "opt_mem"] = "opt",
    thresholds: int = 250,
) -> float:
    """TSB-AD VUS-ROC: range-based ROC AUC averaged over buffer widths (see :func:`vus_pr`).

    Like TSB-AD it is NaN when every point is labelled (the range FPR is 0/0 there).

    >>> y = np.r_[np.zeros(40), np.ones(10), np.zeros(50)]
    >>> vus_roc(y, y, sliding_window=8)
    1.0
    """
    return float(_vus_curves(labels, scores, sliding_window, version, thresholds)[1].mean())


def _vus_curves(
    labels: ArrayLike,
    scores: ArrayLike,
    sliding_window: int | None,
    version: str,
    thresholds: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-width range AP and range ROC-AUC, shape ``[L+1]`` each."""
    if version not in ("opt", "opt_mem"):
        raise ValueError(f"version must be 'opt' or 'opt_mem', got {version!r}")
    if thresholds < 1:
        raise ValueError("thresholds must be >= 1")
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} must be equal-length 1-D")
    y = y != 0
    n, n_pos = y.size, int(y.sum())
    if n_pos == 0:
        raise ValueError("VUS is undefined without labelled anomalies")
    window = find_period(s) if sliding_window is None else int(sliding_window)
    if window < 0:
        raise ValueError("sliding_window must be >= 0")
    s = np.where(np.isnan(s), -np.inf, s)

    # rank[i] = index of the first threshold that flags point i; thresholds are non-increasing.
    n_thr = thresholds
    thr = np.sort(s)[::-1][np.linspace(0, n - 1, n_thr).astype(int)]
    rank = n_thr - np.searchsorted(thr[::-1], s, side="right")
    n_pred = np.cumsum(np.bincount(rank, minlength=n_thr + 1)[:n_thr]).astype(np.float64)
    tp_lab = np.cumsum(np.bincount(rank[y], minlength=n_thr + 1)[:n_thr]).astype(np.float64)

    edges = np.flatnonzero(np.diff(np.r_[0, y.astype(np.int8), 0]))
    starts, ends = edges[0::2], edges[1::2] - 1  # inclusive ends, as TSB-AD
    half = window // 2

    # Every point any width can touch: labelled points plus a margin of `half` around segments.
    cover = np.zeros(n + 1, dtype=np.int64)
    np.add.at(cover, np.maximum(starts - half, 0), 1)
    np.add.at(cover, np.minimum(ends + half, n - 1) + 1, -1)
    region = np.flatnonzero(np.cumsum(cover[:n]) > 0)
    rank_region = rank[region]
    margin = region[~y[region]]
    rank_margin = rank[margin]
    # Distances to the two nearest segment ends on the left and starts on the right: a point
    # reached by two segments saturates (each term >= sqrt(1/2)), so farther ones never matter.
    far = n + window + 1
    left = np.searchsorted(ends, margin)  # segments ending before each margin point
    right = np.searchsorted(starts, margin)  # index of the first segment starting after it
    dist = np.full((4, margin.size), far, dtype=np.int64)
    for row, k in enumerate((left - 1, left - 2)):
        ok = k >= 0
        dist[row, ok] = margin[ok] - ends[k[ok]]
    for row, k in enumerate((right, right + 1), start=2):
        ok = k < starts.size
        dist[row, ok] = starts[k[ok]] - margin[ok]

    ap = np.empty(window + 1)
    auc = np.empty(window + 1)
    for w in range(window + 1):
        h = w // 2
        tp_margin: NDArray[np.float64] = np.zeros(n_thr)
        if h > 0:
            terms = np.where(dist <= h, np.sqrt(np.maximum(1.0 - dist / w, 0.0)), 0.0)
            soft = np.minimum(terms.sum(axis=0), 1.0)
            tp_margin = np.cumsum(np.bincount(rank_margin, soft, minlength=n_thr + 1)[:n_thr])
        tp = tp_lab + tp_margin

        # Existence: merged buffered segments [s-h, e+h] hit by a prediction.
        new_group = np.r_[True, ends[:-1] + h < starts[1:] - h]
        lo = np.maximum(starts[new_group] - h, 0)
        hi = np.minimum(ends[np.r_[new_group[1:], True]] + h, n - 1)
        bounds = np.searchsorted(region, np.stack([lo, hi + 1], axis=1).ravel())
        first_hit = np.minimum.reduceat(np.r_[rank_region, n_thr], bounds)[0::2]
        hit = np.cumsum(np.bincount(first_hit, minlength=n_thr + 1)[:n_thr])
        existence = hit / lo.size

        p_new = n_pos + tp_margin / 2
        tpr = np.minimum(tp / p_new, 1.0) * existence
        with np.errstate(invalid="ignore"):  # 0/0 only when every point is labelled
            fpr = (n_pred - tp) / (n - p_new)
        precision = tp / n_pred
        tpr_ext = np.r_[0.0, tpr, 1.0]
        fpr_ext = np.r_[0.0, fpr, 1.0]
        auc[w] = np.dot(np.diff(fpr_ext), (tpr_ext[1:] + tpr_ext[:-1]) / 2)
        ap[w] = np.dot(np.diff(tpr_ext[:-1]), precision)
    return ap, auc
