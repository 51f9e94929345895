"""Conformal p-values of scores against calibration scores, with a Pareto tail beyond them.

An empirical p-value (share of calibration scores above a new score) cannot go below 1/n: a
bundle calibrated on 60 points sees a gross fault and a slightly-too-high point alike, and
with α < 1/n no evidence can ever be positive. Beyond the k-th largest calibration score u the
p-value follows a Pareto tail fitted to the top k scores (Hill's estimator ξ):

    p(g) = k/n · (g / u)^(−1/ξ)          for g > u,   else the share of scores ≥ g

so p keeps falling with the size of the deviation, at any calibration size, and is continuous
at u. The tail is heavy (polynomial, not exponential) on purpose: squared errors are heavy
tailed, and a light tail would turn mild drift into tiny p-values.

Ties count against the new score (the conformal rule: the share of calibration scores *at or
above* it): with a calibration period whose scores are all equal — a channel constant in
training, a flat validation period — a score equal to them has p = 1, not 0, so ties can never
turn nominal points into evidence (issue 23: such a bundle used to set h = n_val · ln 100).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_TAIL_INDEX = 0.1  # ξ floor: a near-constant top makes a cliff, not a tail


def tail_size(n: int) -> int:
    """k: the top 10 % of the calibration scores, at least 5 and at most 500 (and < n).

    >>> tail_size(60), tail_size(5_000), tail_size(100_000), tail_size(3)
    (6, 500, 500, 2)
    """
    return max(1, min(n - 1, max(5, min(n // 10, 500))))


@dataclass(frozen=True, eq=False)
class TailReference:
    """Sorted calibration scores [n] and the Pareto tail fitted to their top k.

    >>> ref = TailReference.fit(np.arange(1.0, 101.0))  # scores 1..100
    >>> ref.p_values(np.array([0.5, 50.0, 100.0, 1000.0])).round(4).tolist()
    [1.0, 0.51, 0.0349, 0.0]
    >>> TailReference.fit(np.full(50, 2.0)).p_values(np.array([2.0, 2.5])).round(4).tolist()
    [1.0, 0.0107]
    """

    sorted_scores: np.ndarray  # [n] float64 ascending
    k: int
    u: float  # the (k+1)-th largest score, where the tail starts
    xi: float  # Hill tail index
    log_median: float  # log of the median score (the level of nominal data)

    @classmethod
    def fit(cls, scores: np.ndarray) -> TailReference:
        s = np.sort(np.asarray(scores, np.float64))
        n = len(s)
        if n == 0:
            raise ValueError("no calibration scores")
        k = tail_size(n)
        tiny = max(float(s[-1]), 1.0) * 1e-12
        u = max(float(s[n - k - 1]) if n > k else float(s[0]), tiny)  # > 0: scores are ≥ 0
        xi = float(np.mean(np.log(np.maximum(s[n - k :], u) / u)))
        median = float(np.median(s))
        return cls(s, k, u, max(xi, MIN_TAIL_INDEX), math.log(max(median, tiny)))

    @property
    def n(self) -> int:
        return len(self.sorted_scores)

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        """p of each score [N]: the share of calibration scores ≥ it, or the tail (NaN stays
        NaN)."""
        g = np.asarray(scores, np.float64)
        n = self.n
        above = (n - np.searchsorted(self.sorted_scores, g, side="left")) / n  # share ≥ g
        in_tail = g > self.u
        if in_tail.any():
            with np.errstate(over="ignore", invalid="ignore"):
                ratio = np.maximum(g, self.u) / self.u
                above = np.where(in_tail, self.k / n * ratio ** (-1.0 / self.xi), above)
        return np.where(np.isnan(g), np.nan, above)
