"""MiniRocket features (Dempster, Schmidt & Webb, KDD 2021) and the clustering peer built on
them: features → StandardScaler → k-means.

Why written here and not taken from aeon or sktime: both compile the transform with numba, which
pins numpy below the version this project runs and adds ~100 MB and a JIT compilation to the
first job in every new process (the service starts a fresh process per job). The transform is
~100 lines of numpy, vectorised over the series, and is checked against aeon's own output on a
committed reference (`tests/model_training/emtc/test_minirocket.py`; its parameters fitted by
aeon, then our transform gives the same features).

The method, as published: 84 fixed kernels of length 9 (weight −1 everywhere, 2 at three of
the nine taps); dilations spaced exponentially up to (T − 1)/8; for every (dilation, kernel) a
random subset of channels summed (multivariate), biases drawn from quantiles of the
convolution of one random training series, and one feature per bias: the proportion of
positive values (PPV) of convolution minus bias. Kernels alternate between 'same' padding and
no padding.

>>> x = np.random.default_rng(0).normal(size=(6, 40, 2)).astype(np.float32)
>>> f = MiniRocket(n_features=840, seed=0).fit(x).transform(x)
>>> f.shape, bool(((0 <= f) & (f <= 1)).all())
((6, 840), True)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

KERNEL_LENGTH = 9  # also the shortest series the method takes
DEFAULT_FEATURES = 10_000  # the paper's default
KERNELS = np.array(list(combinations(range(KERNEL_LENGTH), 3)), dtype=np.int64)  # [84, 3]
BATCH_SERIES = 128  # series convolved at once: bounds the [9, B, D, T] tap array


def fit_dilations(t: int, n_features: int, max_dilations: int) -> tuple[np.ndarray, np.ndarray]:
    """Dilations (exponentially spaced, unique) and how many features each gets per kernel."""
    per_kernel = n_features // len(KERNELS)
    n_dil = min(per_kernel, max_dilations)
    top = np.log2((t - 1) / (KERNEL_LENGTH - 1))
    dilations, counts = np.unique(
        np.logspace(0, top, n_dil, base=2).astype(np.int32), return_counts=True
    )
    per_dilation = (counts * (per_kernel / n_dil)).astype(np.int32)
    for i in range(per_kernel - int(per_dilation.sum())):  # spread the remainder in turn
        per_dilation[i % len(per_dilation)] += 1
    return dilations, per_dilation


def golden_quantiles(n: int) -> np.ndarray:
    """A low-discrepancy sequence in (0, 1): {i·φ} for i = 1..n."""
    phi = (np.sqrt(5) + 1) / 2
    return np.array([(i * phi) % 1 for i in range(1, n + 1)], dtype=np.float32)


def _taps(x: np.ndarray, dilation: int) -> np.ndarray:
    """x [B, D, T] → the nine dilated taps, zero-padded ('same'): [9, B, D, T]."""
    b, d, t = x.shape
    taps = np.zeros((KERNEL_LENGTH, b, d, t), dtype=np.float32)
    for j in range(KERNEL_LENGTH):
        shift = (j - KERNEL_LENGTH // 2) * dilation  # tap j reads x[t + shift]
        if shift >= 0:
            taps[j, :, :, : t - shift] = x[:, :, shift:] if shift < t else 0.0
        elif -shift < t:
            taps[j, :, :, -shift:] = x[:, :, : t + shift]
    return taps


def _convolve(taps: np.ndarray, kernel: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """Kernel output summed over `channels`: −Σ all taps + 3·Σ the kernel's three → [B, T]."""
    sel = taps[:, :, channels]  # [9, B, c, T]
    out = -sel.sum(axis=0) + 3.0 * sel[kernel].sum(axis=0)  # [B, c, T]
    return out.sum(axis=1)


@dataclass
class MiniRocket:
    """fit on [N, T, D] (the project's layout), transform to [N, F] PPV features."""

    n_features: int = DEFAULT_FEATURES
    max_dilations: int = 32
    seed: int = 0
    dilations: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    features_per_dilation: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    channels_per_combination: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    channel_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    biases: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def fit(self, x: np.ndarray) -> MiniRocket:
        xs = _channels_first(x)
        n, d, t = xs.shape
        if t < KERNEL_LENGTH:
            raise ValueError(f"MiniRocket needs T >= {KERNEL_LENGTH} steps, got T = {t}")
        rng = np.random.default_rng(self.seed)
        self.dilations, self.features_per_dilation = fit_dilations(
            t, max(self.n_features, len(KERNELS)), self.max_dilations
        )
        combos = len(KERNELS) * len(self.dilations)
        top = np.log2(min(d, KERNEL_LENGTH) + 1)
        self.channels_per_combination = (2 ** rng.uniform(0, top, combos)).astype(np.int32)
        self.channel_indices = np.concatenate(
            [rng.choice(d, c, replace=False) for c in self.channels_per_combination]
        ).astype(np.int32)
        quantiles = golden_quantiles(len(KERNELS) * int(self.features_per_dilation.sum()))
        biases, f0 = [], 0
        for _, dil, nf, k, chans in self._combinations():
            example = xs[rng.integers(n)][None]  # [1, D, T]: one random training series
            conv = _convolve(_taps(example, dil), KERNELS[k], chans)[0]  # [T]
            biases.append(np.quantile(conv, quantiles[f0 : f0 + nf]).astype(np.float32))
            f0 += nf
        self.biases = np.concatenate(biases)
        return self

    def _combinations(self) -> Iterator[tuple[int, int, int, int, np.ndarray]]:
        """(dilation index, dilation, features, kernel index, channels) in feature order."""
        start = 0
        pairs = zip(self.dilations, self.features_per_dilation, strict=True)
        for di, (dil, nf) in enumerate(pairs):
            for k in range(len(KERNELS)):
                c = int(self.channels_per_combination[di * len(KERNELS) + k])
                yield di, int(dil), int(nf), k, self.channel_indices[start : start + c]
                start += c

    def transform(self, x: np.ndarray) -> np.ndarray:
        """[N, T, D] → [N, F] float32 in [0, 1]."""
        xs = _channels_first(x)
        out = np.empty((len(xs), len(self.biases)), dtype=np.float32)
        for lo in range(0, len(xs), BATCH_SERIES):
            out[lo : lo + BATCH_SERIES] = self._transform_batch(xs[lo : lo + BATCH_SERIES])
        return out

    def _transform_batch(self, xs: np.ndarray) -> np.ndarray:
        feats: list[np.ndarray] = []
        f0, taps_of, taps = 0, -1, np.zeros(0, np.float32)
        for di, dil, nf, k, chans in self._combinations():
            if taps_of != di:
                taps_of, taps = di, _taps(xs, dil)  # [9, B, D, T], once per dilation
            conv = _convolve(taps, KERNELS[k], chans)  # [B, T]
            if (di + k) % 2 == 1:  # every other kernel: outputs of the unpadded part only
                pad = (KERNEL_LENGTH - 1) * dil // 2
                conv = conv[:, pad:-pad]
            bias = self.biases[f0 : f0 + nf]
            feats.append((conv[:, None, :] > bias[None, :, None]).mean(axis=2))  # [B, nf]
            f0 += nf
        return np.concatenate(feats, axis=1)


def _channels_first(x: np.ndarray) -> np.ndarray:
    if x.ndim != 3:
        raise ValueError(f"expected [N, T, D], got shape {x.shape}")
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(0, 2, 1))


def minirocket_kmeans(
    x: np.ndarray, n_clusters: int, seed: int = 0, n_features: int = DEFAULT_FEATURES
) -> tuple[np.ndarray, np.ndarray]:
    """The peer: MiniRocket features of the series themselves (no labels), scaled, k-means.

    Returns (labels [N], scaled features [N, F])."""
    feats = MiniRocket(n_features=n_features, seed=seed).fit(x).transform(x)
    from sklearn.cluster import KMeans  # here: the service sizes jobs from this module's
    from sklearn.preprocessing import StandardScaler  # constants without scikit-learn

    scaled = StandardScaler().fit_transform(feats)
    labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(scaled)
    return labels.astype(np.int64), scaled
