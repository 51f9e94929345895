"""Label-free choice of the alarm parameters (α, h, ε) from nominal validation losses only.

The paper sweeps α and h on the test labels; a live service has no labels. The rule, fixed
before any test set was scored:

* α (significance level) is a setting, default 0.01: a point is evidence of an anomaly when
  its loss is rarer than 1 in 100 validation losses.
* ε = 1 / n_cal, so a loss above every calibration loss adds at most log(α · n_cal).
* h must not alarm on nominal data. Two estimates, the larger wins:
  - h_val: the peak of s on the validation stream with *cross-fitted* p-values (each half
    of the validation period scored against the other half's losses, so a point is never
    compared with itself and slow drift between the halves shows up as it will online);
  - h_null: the median peak of s over independent streams of `1 / false_alarm_rate` points
    with uniform p-values (what pure chance reaches over that horizon).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.offline import accumulate_series
from detector.online import AlarmParams


@dataclass(frozen=True)
class CalibrationRule:
    alpha: float = 0.01
    false_alarm_rate: float = 1e-4  # per point, sets the null horizon for h_null
    delta: int = 5
    null_runs: int = 20
    seed: int = 0


def _evidence(losses: np.ndarray, reference: np.ndarray, alpha: float, eps: float) -> np.ndarray:
    ref = np.sort(reference)
    p = (len(ref) - np.searchsorted(ref, losses, side="right")) / len(ref)
    return np.log(alpha / (p + eps))


def cross_fitted_evidence(losses: np.ndarray, alpha: float, eps: float) -> np.ndarray:
    """β of each validation point against the other half of the validation period."""
    half = len(losses) // 2
    first, second = losses[:half], losses[half:]
    return np.concatenate(
        [_evidence(first, second, alpha, eps), _evidence(second, first, alpha, eps)]
    )


def null_peak(n_cal: int, horizon: int, rule: CalibrationRule, eps: float) -> float:
    """Median peak of s over `null_runs` streams of uniform p-values, `horizon` points each."""
    rng = np.random.default_rng(rule.seed)
    peaks = []
    for _ in range(rule.null_runs):
        p = np.floor(rng.uniform(size=horizon) * (n_cal + 1)) / n_cal  # ranks of a new loss
        beta = np.log(rule.alpha / (np.minimum(p, 1.0) + eps))
        peaks.append(accumulate_series(beta, rule.delta).max())
    return float(np.median(peaks))


def calibrate(
    validation_losses: np.ndarray, rule: CalibrationRule | None = None
) -> dict[str, float]:
    """α, h, δ, ε and the two h estimates, from time-ordered validation losses."""
    rule = rule or CalibrationRule()
    losses = np.asarray(validation_losses, np.float64)
    eps = 1.0 / len(losses)
    s_val = accumulate_series(cross_fitted_evidence(losses, rule.alpha, eps), rule.delta)
    h_val = float(s_val.max())
    h_null = null_peak(len(losses), int(round(1 / rule.false_alarm_rate)), rule, eps)
    return {
        "alpha": rule.alpha,
        "threshold": max(h_val, h_null),
        "delta": rule.delta,
        "epsilon": eps,
        "h_validation": h_val,
        "h_null": h_null,
        "false_alarm_rate": rule.false_alarm_rate,
    }


def alarm_params(calibration: dict[str, float]) -> AlarmParams:
    return AlarmParams(
        calibration["alpha"],
        calibration["threshold"],
        int(calibration["delta"]),
        calibration["epsilon"],
    )
