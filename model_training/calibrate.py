"""Label-free choice of the alarm parameters (α, h, δ, ε, adaptation) from nominal scores only.

The paper sweeps α and h on the test labels; a live service has no labels. The rule, fixed
before any test set was scored (docs/ccm_tad.md):

* α (significance level), default 0.05: a point is evidence of an anomaly when its score is
  rarer than 1 in 20 validation scores (on SMD 0.05 beat 0.01 label-free: docs/ccm_tad.md).
  p-values have a Pareto tail beyond the top of the calibration scores (detector.pvalue), so
  positive evidence is reachable at any calibration size.
* ε = α / 100: the largest evidence one point can add is log(α / ε) = log 100 ≈ 4.6, whatever
  the size of the calibration set (ε = 1 / n made it ≤ 0 for n ≤ 1 / α: such a bundle could
  never alarm).
* adapt_points, default 2,000: the drift level's horizon (detector.adaptation).
* h must not alarm on nominal data, and is never 0. Two estimates, the larger wins:
  - h_val: the peak of s on the validation stream with *cross-fitted* p-values (each half
    of the validation period scored against the other half, with the drift level running, so
    a point is never compared with itself and drift between the halves shows up as online);
  - h_null: the median peak of s over independent streams of `1 / false_alarm_rate` points
    with uniform p-values (what pure chance reaches over that horizon).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.adaptation import adapt_levels, shifts
from detector.alarm import AlarmParams
from detector.offline import accumulate_series
from detector.pvalue import TailReference

MIN_CALIBRATION_POINTS = 20  # fewer validation scores than this: no tail can be fitted


class CalibrationSizeError(ValueError):
    """Too few validation scores to calibrate alarms at all."""


@dataclass(frozen=True)
class CalibrationRule:
    alpha: float = 0.05
    false_alarm_rate: float = 1e-4  # per point, sets the null horizon for h_null
    delta: int = 5
    null_runs: int = 20
    seed: int = 0
    epsilon_ratio: float = 0.01  # ε = α · epsilon_ratio
    adapt_points: int = 2000


def evidence(
    scores: np.ndarray, reference: TailReference, rule: CalibrationRule, level: float = 0.0
) -> np.ndarray:
    """β of a time-ordered score series against a reference, with the drift level running
    exactly as the online core runs it."""
    levels = adapt_levels(level, scores, reference.log_median, rule.adapt_points)
    shift = shifts(level, levels, 0.0) if len(scores) else np.zeros(0)
    p = reference.p_values(np.asarray(scores, np.float64) * np.exp(-shift))
    return np.log(rule.alpha / (p + rule.alpha * rule.epsilon_ratio))


def cross_fitted_evidence(scores: np.ndarray, rule: CalibrationRule) -> np.ndarray:
    """β of each validation point against the other half of the validation period."""
    half = len(scores) // 2
    first, second = scores[:half], scores[half:]
    return np.concatenate(
        [
            evidence(first, TailReference.fit(second), rule),
            evidence(second, TailReference.fit(first), rule),
        ]
    )


def null_peak(horizon: int, rule: CalibrationRule) -> float:
    """Median peak of s over `null_runs` streams of uniform p-values, `horizon` points each."""
    rng = np.random.default_rng(rule.seed)
    eps = rule.alpha * rule.epsilon_ratio
    peaks = [
        accumulate_series(np.log(rule.alpha / (rng.uniform(size=horizon) + eps)), rule.delta).max()
        for _ in range(rule.null_runs)
    ]
    return float(np.median(peaks))


def calibration_warning(n_scores: int, rule: CalibrationRule) -> str | None:
    """A sentence for the user when the calibration set is small for the chosen α, else None."""
    if n_scores < MIN_CALIBRATION_POINTS:
        raise CalibrationSizeError(
            f"{n_scores} validation points; at least {MIN_CALIBRATION_POINTS} are needed to "
            "calibrate alarms (train on more data or a larger validation fraction)"
        )
    if n_scores * rule.alpha < 10:
        return (
            f"{n_scores} validation points for α = {rule.alpha}: fewer than 10 of them are "
            f"rarer than α, so the alarm threshold rests on a fitted tail; "
            f"{int(np.ceil(10 / rule.alpha))} or more points give a measured one"
        )
    return None


def calibrate(
    validation_scores: np.ndarray, rule: CalibrationRule | None = None
) -> dict[str, float]:
    """α, h, δ, ε, adapt_points and the two h estimates, from time-ordered validation scores."""
    rule = rule or CalibrationRule()
    scores = np.asarray(validation_scores, np.float64)
    calibration_warning(len(scores), rule)
    s_val = accumulate_series(cross_fitted_evidence(scores, rule), rule.delta)
    h_val = float(s_val.max())
    h_null = null_peak(int(round(1 / rule.false_alarm_rate)), rule)
    return {
        "alpha": rule.alpha,
        "threshold": max(h_val, h_null),
        "delta": rule.delta,
        "epsilon": rule.alpha * rule.epsilon_ratio,
        "adapt_points": rule.adapt_points,
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
        int(calibration.get("adapt_points", 0)),
    )
