"""Anomaly-detection metrics for comparing CCM-TAD with the literature (SPEC: evaluation protocols).

Point-wise only, never point-adjusted: point adjustment lets a random score reach PA-F1 ~0.73,
so it is not offered here. :func:`best_f1` is the NPSR "best F1" protocol; the TSB-AD VUS
metrics live in :mod:`model_training.vus` and are re-exported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from model_training.vus import find_period, vus_pr, vus_roc

__all__ = [
    "PRF",
    "BestF1",
    "DelayReport",
    "best_f1",
    "detection_delay",
    "find_period",
    "point_prf",
    "segments",
    "vus_pr",
    "vus_roc",
]


@dataclass(frozen=True)
class PRF:
    """Point-wise F1, precision and recall (0/0 is defined as 0)."""

    f1: float
    precision: float
    recall: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict, for JSON reports and logging."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class BestF1(PRF):
    """Best point-wise F1 over thresholds, with the threshold (``score >= threshold``)."""

    threshold: float


@dataclass(frozen=True)
class DelayReport:
    """Detection delay in points; undetected segments are counted, not averaged."""

    mean_delay: float | None
    n_detected: int
    n_segments: int
    delays: list[int]


def _flags(x: ArrayLike, name: str) -> NDArray[np.bool_]:
    """1-D boolean view of a 0/1 (or bool) array; nonzero means anomalous / predicted."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr != 0


def _same_length(a: NDArray[np.generic], b: NDArray[np.generic]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"length mismatch: {a.shape} vs {b.shape}")


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else 0.0


def segments(labels: ArrayLike) -> NDArray[np.int64]:
    """Runs of anomalous points as ``[start, end_exclusive)`` rows, shape ``[K, 2]``.

    Event-level metrics (delay, existence) are defined per segment, not per point.

    >>> segments(np.array([0, 1, 1, 0, 1])).tolist()
    [[1, 3], [4, 5]]
    >>> segments(np.zeros(3)).shape
    (0, 2)
    """
    y = _flags(labels, "labels").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], y, [0]))))
    return edges.reshape(-1, 2).astype(np.int64)


def point_prf(labels: ArrayLike, preds: ArrayLike) -> PRF:
    """Point-wise precision / recall / F1 of binary predictions, no point adjustment.

    >>> point_prf([0, 1, 1, 0, 1], [0, 1, 0, 1, 1]).as_dict()
    {'f1': 0.6666666666666666, 'precision': 0.6666666666666666, 'recall': 0.6666666666666666}
    >>> point_prf([0, 0], [0, 0])
    PRF(f1=0.0, precision=0.0, recall=0.0)
    """
    y, p = _flags(labels, "labels"), _flags(preds, "preds")
    _same_length(y, p)
    tp, n_pred, n_pos = int(np.sum(y & p)), int(p.sum()), int(y.sum())
    # F1 = 2TP / (2TP + FP + FN), the same expression best_f1 uses, so the two agree exactly.
    return PRF(
        f1=_ratio(2 * tp, n_pred + n_pos),
        precision=_ratio(tp, n_pred),
        recall=_ratio(tp, n_pos),
    )


def best_f1(labels: ArrayLike, scores: ArrayLike) -> BestF1:
    """NPSR best F1: the best point-wise F1 over every distinct score used as a threshold.

    Predict ``score >= threshold``; O(n log n) via one sort and cumulative sums, so it runs on
    whole test sets. NaN scores (warm-up) are never predicted but their labels still count as
    misses. Ties in F1 go to the highest threshold. With no finite score the result is all zero
    and ``threshold = inf`` (predict nothing).

    >>> r = best_f1([0, 0, 1, 1, 0], [0.1, 0.4, 0.35, 0.8, 0.2])
    >>> round(r.f1, 4), r.threshold
    (0.8, 0.35)
    """
    y = _flags(labels, "labels")
    s = np.asarray(scores, dtype=np.float64)
    _same_length(y, s)
    n_pos = int(y.sum())
    valid = ~np.isnan(s)
    if not valid.any():
        return BestF1(f1=0.0, precision=0.0, recall=0.0, threshold=float("inf"))
    order = np.argsort(s[valid], kind="stable")[::-1]
    s_desc = s[valid][order]
    tp_cum = np.cumsum(y[valid][order])
    # Only the last position of each run of equal scores is a reachable prediction set.
    last = np.flatnonzero(np.r_[s_desc[1:] != s_desc[:-1], True])
    tp = tp_cum[last].astype(np.float64)
    n_pred = (last + 1).astype(np.float64)
    f1 = 2 * tp / (n_pred + n_pos)
    k = int(np.argmax(f1))
    return BestF1(
        f1=float(f1[k]),
        precision=_ratio(tp[k], n_pred[k]),
        recall=_ratio(tp[k], n_pos),
        threshold=float(s_desc[last[k]]),
    )


def detection_delay(labels: ArrayLike, preds: ArrayLike) -> DelayReport:
    """Per labelled segment, first predicted index inside it minus its start.

    Real-time alerting cares how late an event is caught, which F1 hides. Undetected segments
    are excluded from the mean (``None`` if nothing is detected) and reported via
    ``n_detected``; ``delays`` lists the detected segments' delays in time order.

    >>> detection_delay([0, 1, 1, 1, 0, 1, 1, 0], [0, 0, 0, 1, 0, 0, 0, 1])
    DelayReport(mean_delay=2.0, n_detected=1, n_segments=2, delays=[2])
    """
    y, p = _flags(labels, "labels"), _flags(preds, "preds")
    _same_length(y, p)
    segs = segments(y)
    hits = np.r_[np.flatnonzero(p), p.size]  # sentinel past every segment end
    first = hits[np.searchsorted(hits, segs[:, 0])]
    detected = first < segs[:, 1]
    delays = (first[detected] - segs[detected, 0]).tolist()
    return DelayReport(
        mean_delay=float(np.mean(delays)) if delays else None,
        n_detected=len(delays),
        n_segments=len(segs),
        delays=[int(d) for d in delays],
    )
