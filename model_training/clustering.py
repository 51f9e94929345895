"""Channel clustering, Algorithm 1 of the CCM-TAD paper (spectral clustering of |Pearson|).

Channels that move together share an embedding, so the model need not learn spurious links
between unrelated sensors. Constant channels (an all-zero correlation row) get a cluster of
their own. When the user gives no M, it is chosen by the silhouette of the channels'
correlation profiles — label-free, seeded and deterministic.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import eigh
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score


def correlation_profiles(train: np.ndarray) -> np.ndarray:
    """Φ_abs = |Pearson correlation| of the channels [C, C], NaN (constant channels) → 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.corrcoef(np.asarray(train, np.float64), rowvar=False)
    return np.abs(np.nan_to_num(np.atleast_2d(phi), nan=0.0))


def spectral_labels(phi_abs: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """Algorithm 1 steps 2–5 for a given M; returns a cluster label per channel in 0..M−1.

    >>> phi = np.kron(np.eye(2), np.ones((3, 3)))  # two blocks of three correlated channels
    >>> labels = spectral_labels(phi, 2)
    >>> bool(len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3])
    True
    """
    c = len(phi_abs)
    constant = ~phi_abs.any(axis=1)  # f_d
    varying = np.flatnonzero(~constant)  # f_c
    labels = np.zeros(c, dtype=np.int64)
    if n_clusters <= 1 or len(varying) == 0:
        return labels
    k = n_clusters - 1 if constant.any() else n_clusters  # clusters among the varying channels
    k = min(k, len(varying))
    if k > 1:
        rows = phi_abs[np.ix_(varying, varying)]
        unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        w = unit @ unit.T  # cosine similarity between correlation profiles
        np.fill_diagonal(w, 0.0)
        deg = np.maximum(w.sum(axis=1), 1e-12)
        d_inv_sqrt = 1.0 / np.sqrt(deg)
        lap = np.eye(len(varying)) - d_inv_sqrt[:, None] * w * d_inv_sqrt[None, :]
        _, vecs = eigh(lap, subset_by_index=[1, k] if len(varying) > k else [0, k - 1])
        vecs = vecs * np.sign(vecs[np.argmax(np.abs(vecs), axis=0), range(vecs.shape[1])])
        u = d_inv_sqrt[:, None] * vecs
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(u)
        labels[varying] = _relabel(km.labels_)
    if constant.any():
        labels[constant] = labels[varying].max() + 1
    return labels


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Number clusters by first appearance, so equal partitions give equal labels."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    mapping = np.empty(len(order), np.int64)
    mapping[order] = np.arange(len(order))
    return mapping[np.unique(labels, return_inverse=True)[1]]


def choose_n_clusters(phi_abs: np.ndarray, max_clusters: int = 10, seed: int = 0) -> int:
    """M with the best silhouette of the varying channels' correlation profiles (cosine)."""
    varying = np.flatnonzero(phi_abs.any(axis=1))
    extra = int(len(varying) < len(phi_abs))  # constant channels add one cluster
    best_m, best_score = 1 + extra, -np.inf
    profiles = phi_abs[np.ix_(varying, varying)]
    for k in range(2, min(max_clusters - extra, len(varying) - 1) + 1):
        labels = spectral_labels(phi_abs, k + extra, seed)[varying]
        if len(set(labels.tolist())) < 2:
            continue
        score = silhouette_score(profiles, labels, metric="cosine")
        if score > best_score:
            best_m, best_score = k + extra, score
    return best_m


def cluster_channels(
    train: np.ndarray, n_clusters: int | None = None, max_clusters: int = 10, seed: int = 0
) -> np.ndarray:
    """Cluster label per channel of the nominal training data [T, C]."""
    phi = correlation_profiles(train)
    m = n_clusters if n_clusters is not None else choose_n_clusters(phi, max_clusters, seed)
    return spectral_labels(phi, m, seed)
