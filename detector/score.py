"""The anomaly score of a point: per-channel contributions, averaged over channels.

    r              = (x − center) − B^T B (x − center)          residual off the nominal subspace
    contribution_c = error_weight_c · (x̂_c − x_c)²  +  deviation_weight_c · r_c²
    score          = mean_c contribution_c                     (x scaled [C], B [k, C] orthonormal)

Two kinds, both written by the trainer into the bundle:

* ``mse`` — the paper's score: error_weight = 1, deviation_weight = 0.
* ``hybrid`` (default) — the model's error of each channel divided by that channel's mean
  validation error (a channel the model reconstructs well counts as much as a noisy one), plus
  the point's residual off the principal subspace of the training data (PCA, 95 % of the
  variance), each channel's residual divided by its mean on validation; each of the two terms
  divided by its median on the validation period so neither dominates by units. Why both
  (docs/ccm_tad.md, measured on SMD): the better the model fits, the better it also
  reconstructs anomalies, so its error alone misses large excursions that a linear model of
  nominal data sees at once; the linear residual misses temporal and non-linear relations,
  which the model's error sees. An ensemble of the two beats either alone on SMD.

The per-channel contributions also rank the channels an alarm names.

>>> s = ChannelScore.mse(2)
>>> s.score(np.array([[0.1, 0.3]]), np.zeros((1, 2), np.float32)).round(3).tolist()
[0.2]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ScoreKind = Literal["mse", "hybrid"]
SCORE_KINDS: tuple[ScoreKind, ...] = ("mse", "hybrid")


@dataclass(frozen=True, eq=False)
class ChannelScore:
    """Weights of the two terms per channel ([C] float64 each), the training center [C] and
    the basis [k, C] of the nominal subspace (k = 0: plain distance from the center)."""

    kind: ScoreKind
    error_weight: np.ndarray  # [C]
    deviation_weight: np.ndarray  # [C]
    center: np.ndarray  # [C], scaled training mean
    basis: np.ndarray  # [k, C], orthonormal rows

    @classmethod
    def mse(cls, n_channels: int) -> ChannelScore:
        ones, zeros = np.ones(n_channels), np.zeros(n_channels)
        return cls("mse", ones, zeros, zeros, np.zeros((0, n_channels)))

    @classmethod
    def hybrid(
        cls,
        val_errors: np.ndarray,
        val_scaled: np.ndarray,
        center: np.ndarray,
        basis: np.ndarray,
    ) -> ChannelScore:
        """Weights from validation squared errors [n, C] and scaled validation points [n, C]."""
        c = np.asarray(center, np.float64)
        b = np.asarray(basis, np.float64).reshape(-1, len(c))
        err = np.asarray(val_errors, np.float64)
        res = _residual(np.asarray(val_scaled, np.float64), c, b) ** 2  # [n, C]
        w_err, w_res = _inverse_means(err), _inverse_means(res)
        m_err = max(float(np.median((err * w_err).mean(axis=1))), 1e-12)
        m_res = max(float(np.median((res * w_res).mean(axis=1))), 1e-12)
        return cls("hybrid", w_err / m_err, w_res / m_res, c, b)

    @property
    def n_channels(self) -> int:
        return len(self.error_weight)

    def contributions(self, errors: np.ndarray, scaled: np.ndarray) -> np.ndarray:
        """[N, C] per-channel contributions from squared errors [N, C] and scaled points."""
        out = np.asarray(errors, np.float64) * self.error_weight
        if self.kind != "mse":
            res = _residual(np.asarray(scaled, np.float64), self.center, self.basis)
            out = out + res**2 * self.deviation_weight
        return out

    def score(self, errors: np.ndarray, scaled: np.ndarray) -> np.ndarray:
        """[N] scores."""
        return np.asarray(self.contributions(errors, scaled).mean(axis=1))

    def arrays(self) -> dict[str, np.ndarray]:
        """What a bundle stores (calibration.npz)."""
        return {
            "error_weight": self.error_weight,
            "deviation_weight": self.deviation_weight,
            "center": self.center,
            "basis": self.basis,
        }


def _residual(x: np.ndarray, center: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """[N, C] part of x − center orthogonal to the (orthonormal) basis rows [k, C].

    numpy's own einsum loops, never BLAS, on purpose: a matmul of the whole block is blocked by
    BLAS by the number of rows, and BLAS row by row sums in an order that depends on where a row
    lies in memory, so a point's residual would change in its last bits with the batch it
    arrived in — and the service promises identical results however points are batched
    (tests/detector/test_score.py, tests/service/test_properties.py). einsum without
    `optimize` reduces each row alone; ~6× faster than the broadcast products and sums it
    replaced (3.0 → 0.5 µs a row at N = 64, C = 38, k = 23)."""
    d = x - center  # [N, C]
    if not len(basis):
        return d
    coef = np.einsum("nc,kc->nk", d, basis, optimize=False)  # [N, k]
    return np.asarray(d - np.einsum("nk,kc->nc", coef, basis, optimize=False))


def _inverse_means(sq: np.ndarray) -> np.ndarray:
    """1 / per-channel mean of squares [C], floored at 1e-3 × the median channel's mean so a
    channel that is (nearly) perfect on validation cannot blow up."""
    per_channel = sq.mean(axis=0)
    floor = 1e-3 * float(np.median(per_channel)) + 1e-12
    return np.asarray(1.0 / np.maximum(per_channel, floor))
