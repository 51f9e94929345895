"""Clustering metrics: ACC and macro F1 after Hungarian matching, NMI, ARI.

Why matching: cluster ids are arbitrary, so ACC/F1 are computed after the one-to-one mapping of
clusters to classes that maximises the number of agreements (as in the EMTC paper and its code).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score


def _encode(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_pred.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(
            f"label arrays must be 1-D and equal length: {y_true.shape} {y_pred.shape}"
        )
    if y_true.size == 0:
        raise ValueError("empty label arrays")
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    return t, p


def matched_predictions(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (true ids, predicted ids mapped onto true ids) via the Hungarian algorithm.

    Clusters left unmatched (more clusters than classes) get ids outside the class range, so they
    count as errors.
    """
    t, p = _encode(y_true, y_pred)
    n_t, n_p = t.max() + 1, p.max() + 1
    n = max(n_t, n_p)
    contingency = np.zeros((n, n), dtype=np.int64)  # [pred cluster, true class]
    np.add.at(contingency, (p, t), 1)
    rows, cols = linear_sum_assignment(-contingency)
    mapping = dict(zip(rows.tolist(), cols.tolist(), strict=True))
    mapped = np.array([mapping[c] for c in p.tolist()], dtype=np.int64)
    return t, mapped


def clustering_acc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of samples whose matched cluster equals their class."""
    t, mapped = matched_predictions(y_true, y_pred)
    return float(np.mean(t == mapped))


def matched_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over the true classes after Hungarian matching."""
    t, mapped = matched_predictions(y_true, y_pred)
    classes = np.unique(t)
    return float(f1_score(t, mapped, labels=classes, average="macro", zero_division=0))


def score_clustering(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """All four metrics as a dict: acc, f1, nmi, ari."""
    t, p = _encode(y_true, y_pred)
    return {
        "acc": clustering_acc(t, p),
        "f1": matched_macro_f1(t, p),
        "nmi": float(normalized_mutual_info_score(t, p)),
        "ari": float(adjusted_rand_score(t, p)),
    }
