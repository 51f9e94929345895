"""Synthetic faults injected into nominal validation windows: a label-free yardstick.

Validation loss says how well the model fits nominal data, not how well its score separates
anomalies — on SMD the two pull apart after a few epochs (docs/ccm_tad.md). Training instead
keeps the epoch whose score best separates windows with faults we injected ourselves from the
same windows untouched (ROC AUC), and stops when that stops improving. Three fault kinds,
each on the last `span` points of randomly chosen windows (scaled units, range [−1, 1]):

* level shift — one or a few channels move by ±0.5 (a quarter of the training range);
* spike — one channel's last point jumps by ±1.5;
* decoupling — one channel's last points are replaced by the same channel at another time,
  so it stays in range but leaves the relation with the other channels.

No test label is read; the faults come from a fixed seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import roc_auc_score

FAULT_KINDS = ("level_shift", "spike", "decoupling")


def inject_faults(
    windows: np.ndarray, n_per_kind: int = 128, seed: int = 0, clip: float = 4.0
) -> tuple[np.ndarray, np.ndarray]:
    """(clean, faulty) windows [K, L, C] float32: the same K windows without and with a fault.

    >>> w = np.zeros((50, 24, 3), np.float32)
    >>> clean, faulty = inject_faults(w, n_per_kind=4)
    >>> clean.shape, bool((faulty != clean).any(axis=(1, 2)).all())
    ((12, 24, 3), True)
    """
    rng = np.random.default_rng(seed)
    n, size, c = windows.shape
    picks = rng.integers(0, n, size=n_per_kind * len(FAULT_KINDS))
    clean = windows[picks].astype(np.float32)
    faulty = clean.copy()
    for i in range(len(picks)):
        kind = FAULT_KINDS[i // n_per_kind]
        span = int(rng.integers(1, size // 2 + 1))
        ch = rng.choice(c, size=max(1, int(rng.integers(1, max(2, c // 4) + 1))), replace=False)
        sign = rng.choice([-1.0, 1.0])
        if kind == "level_shift":
            faulty[i, -span:, ch] += 0.5 * sign
        elif kind == "spike":
            faulty[i, -1, ch[0]] += 1.5 * sign
        else:
            donor = windows[int(rng.integers(0, n))]
            faulty[i, -span:, ch[0]] = donor[-span:, ch[0]]
            if np.array_equal(faulty[i], clean[i]):  # identical donor: nudge so it differs
                faulty[i, -1, ch[0]] += 0.5 * sign
    return clean, np.clip(faulty, -clip, clip)


def separation_auc(
    score: Callable[[np.ndarray], np.ndarray], clean: np.ndarray, faulty: np.ndarray
) -> float:
    """ROC AUC of the scores of faulty over clean windows (1: perfect, 0.5: blind)."""
    s_clean, s_faulty = score(clean), score(faulty)
    y = np.r_[np.zeros(len(s_clean)), np.ones(len(s_faulty))]
    return float(roc_auc_score(y, np.nan_to_num(np.r_[s_clean, s_faulty], nan=0.0)))
