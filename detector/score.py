"""The anomaly score of a point: per-channel contributions, averaged over channels.

    r              = (x − center) − B^T B (x − center)          residual off the nominal subspace
    contribution_c = error_weight_c · (x̂_c − x_c)²  +  deviation_weight_c · r_c²
    score          = mean_c contribution_c                     (x scaled [C], B [k, C] orthonormal)

Four kinds, each written by the trainer into the bundle (docs/ccm_tad.md: the trainer picks
one per entity, label-free, among the last three):

* ``mse`` — the paper's score: error_weight = 1, deviation_weight = 0.
* ``pca`` — the residual term of the hybrid alone (error_weight = 0).
* ``distance`` — squared distance from the training mean in scaled units (k = 0), one weight
  for all channels: a large excursion of any channel counts by its size.
* ``hybrid`` — the model's error of each channel divided by that channel's mean
  validation error (a channel the model reconstructs well counts as much as a noisy one), plus
  the point's residual off the principal subspace of the training data (PCA, 95 % of the
  variance), each channel's residual divided by its mean on validation; each of the two terms
  divided by its median on the validation period so neither dominates by units. Why both
  (docs/ccm_tad.md, measured on SMD): the better the model fits, the better it also
  reconstructs anomalies, so its error alone misses large excursions that a linear model of
  nominal data sees at once; the linear residual misses temporal and non-linear relations,
  which the model's error sees. An ensemble of the two beats either alone on SMD.

The deviation term reads the *unclipped* scaled point (the model's input is clipped to
±clip; a distance should not be): a reading 100 ranges away scores above one 5 ranges away
(on MSL this alone lifted the hybrid's mean best F1 from 0.382 to 0.405). Channels constant in
training get the median channel's weights instead of a weight floored near 1 / 0: their
departure counts like any channel's, by its size in raw units, never through a division by a
zero scale.

**Context channels.** Channels constant in training or with at most three levels there
(status and command flags, setpoints: `model_training.channel_types`) are the model's input but
not sensors: when an entity has both kinds, the score is the mean contribution of the sensor
channels plus the mean contribution of the context channels *bounded* by `context_cap` (the
median validation score of the sensor part), and the nominal subspace is fitted on the sensor
channels alone. A flag never seen in training then adds at most a typical nominal score: it
sharpens a sensor excursion but cannot by itself dominate. Measured with
`bench/context_channels.py` on SMD and MSL together (docs/ccm_tad.md): with 54 of 55 MSL
columns flags, scoring them as sensors cost 0.03 best F1 and 0.05 VUS-PR there and gained
nothing on SMD.

The per-channel contributions also rank the channels an alarm names.

>>> s = ChannelScore.mse(2)
>>> s.score(np.array([[0.1, 0.3]]), np.zeros((1, 2), np.float32)).round(3).tolist()
[0.2]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ScoreKind = Literal["mse", "hybrid", "pca", "distance"]
SCORE_KINDS: tuple[ScoreKind, ...] = ("mse", "hybrid", "pca", "distance")
CANDIDATE_KINDS: tuple[ScoreKind, ...] = ("hybrid", "pca", "distance")  # label-free choice


@dataclass(frozen=True, eq=False)
class ChannelScore:
    """Weights of the two terms per channel ([C] float64 each), the training center [C] and
    the basis [k, C] of the nominal subspace (k = 0: plain distance from the center)."""

    kind: ScoreKind
    error_weight: np.ndarray  # [C]
    deviation_weight: np.ndarray  # [C]
    center: np.ndarray  # [C], scaled training mean
    basis: np.ndarray  # [k, C], orthonormal rows
    context: np.ndarray | None = None  # [C] bool: context (flag/constant) channels, or None
    context_cap: float = np.inf  # the most the context channels add to a score

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
        constant: np.ndarray | None = None,
        context: np.ndarray | None = None,
    ) -> ChannelScore:
        """Weights from validation squared errors [n, C] and unclipped scaled validation points
        [n, C]; `constant` [C] bool marks channels constant in training, `context` [C] bool the
        context channels (see the module docstring; None: every channel is a sensor)."""
        c = np.asarray(center, np.float64)
        b = np.asarray(basis, np.float64).reshape(-1, len(c))
        err = np.asarray(val_errors, np.float64)
        res = _residual(np.asarray(val_scaled, np.float64), c, b) ** 2  # [n, C]
        w_err, w_res = _inverse_means(err, constant), _inverse_means(res, constant)
        sensor = _sensors(context, len(c))
        m_err = max(float(np.median((err * w_err)[:, sensor].mean(axis=1))), 1e-12)
        m_res = max(float(np.median((res * w_res)[:, sensor].mean(axis=1))), 1e-12)
        return cls("hybrid", w_err / m_err, w_res / m_res, c, b)

    @classmethod
    def fit(
        cls,
        kind: ScoreKind,
        val_errors: np.ndarray,
        val_scaled: np.ndarray,
        center: np.ndarray,
        basis: np.ndarray,
        constant: np.ndarray | None = None,
        context: np.ndarray | None = None,
    ) -> ChannelScore:
        """A score of any kind from the validation period (see `hybrid` for the arrays).

        >>> rng = np.random.default_rng(0)
        >>> err, pts = rng.random((50, 3)) * 0.01, rng.normal(0, 0.3, (50, 3))
        >>> s = ChannelScore.fit("distance", err, pts, np.zeros(3), np.zeros((0, 3)))
        >>> round(float(np.median(s.score(err, pts))), 9), s.error_weight.tolist()
        (1.0, [0.0, 0.0, 0.0])
        """
        n_channels = np.asarray(val_errors).shape[1]
        if kind == "mse":
            return cls.mse(n_channels)
        c = np.asarray(center, np.float64)
        sensor = _sensors(context, n_channels)
        if kind == "distance":
            d = (np.asarray(val_scaled, np.float64) - c) ** 2
            m = max(float(np.median(d[:, sensor].mean(axis=1))), 1e-12)
            zeros = np.zeros((0, n_channels))
            s = cls("distance", np.zeros(n_channels), np.full(n_channels, 1.0 / m), c, zeros)
        else:
            s = cls.hybrid(val_errors, val_scaled, center, basis, constant, context)
            if kind == "pca":
                s = cls("pca", np.zeros(n_channels), s.deviation_weight, s.center, s.basis)
        if sensor.all():
            return s
        part = s.contributions(val_errors, val_scaled)[:, sensor].mean(axis=1)  # [n]
        cap = float(np.median(part))
        mask = ~sensor
        return cls(kind, s.error_weight, s.deviation_weight, s.center, s.basis, mask, cap)

    @property
    def n_channels(self) -> int:
        return len(self.error_weight)

    def contributions(self, errors: np.ndarray, scaled: np.ndarray) -> np.ndarray:
        """[N, C] per-channel contributions from squared errors [N, C] and unclipped scaled
        points [N, C]."""
        # row-major, so that a point's contributions never depend on its batch's memory layout
        out = np.ascontiguousarray(errors, np.float64) * self.error_weight
        if self.kind != "mse":
            res = _residual(np.ascontiguousarray(scaled, np.float64), self.center, self.basis)
            out = out + res**2 * self.deviation_weight
        if self.context is None:
            return out
        # rescaled so that their mean over C is mean(sensors) + min(mean(context), cap)
        ctx = self.context
        n, n_ctx = len(ctx), int(ctx.sum())
        extra = out[:, ctx].mean(axis=1)  # [N]
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = np.where(extra > self.context_cap, self.context_cap / extra, 1.0)  # [N]
        share = np.where(ctx, n / n_ctx, n / (n - n_ctx))  # [C]
        return np.asarray(out * share * np.where(ctx, bound[:, None], 1.0))

    def score(self, errors: np.ndarray, scaled: np.ndarray) -> np.ndarray:
        """[N] scores."""
        return np.asarray(self.contributions(errors, scaled).mean(axis=1))

    def arrays(self) -> dict[str, np.ndarray]:
        """What a bundle stores (calibration.npz)."""
        out = {
            "error_weight": self.error_weight,
            "deviation_weight": self.deviation_weight,
            "center": self.center,
            "basis": self.basis,
        }
        if self.context is not None:
            out["context"] = self.context.astype(np.float64)
            out["context_cap"] = np.array([self.context_cap])
        return out


def _sensors(context: np.ndarray | None, n_channels: int) -> np.ndarray:
    """[C] bool: the channels scored as sensors (all of them without context channels, or when
    every channel is one)."""
    if context is None or not np.asarray(context, bool).any():
        return np.ones(n_channels, bool)
    sensor = ~np.asarray(context, bool)
    return sensor if sensor.any() else np.ones(n_channels, bool)


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


def _inverse_means(sq: np.ndarray, constant: np.ndarray | None = None) -> np.ndarray:
    """1 / per-channel mean of squares [C], floored at 1e-3 × the median channel's mean so a
    channel that is (nearly) perfect on validation cannot blow up; channels constant in
    training (`constant` [C] bool) get the median weight of the others.

    >>> _inverse_means(np.array([[1.0, 4.0, 0.0]]), np.array([False, False, True])).tolist()
    [1.0, 0.25, 0.625]
    """
    per_channel = sq.mean(axis=0)
    live = np.ones(len(per_channel), bool) if constant is None else ~np.asarray(constant, bool)
    floor = 1e-3 * float(np.median(per_channel[live] if live.any() else per_channel)) + 1e-12
    w = 1.0 / np.maximum(per_channel, floor)
    if live.any() and not live.all():
        w[~live] = float(np.median(w[live]))
    return np.asarray(w)
