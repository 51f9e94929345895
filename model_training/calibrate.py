"""Label-free choice of the alarm parameters (α, h, δ, ε, adaptation) from nominal scores only.

The paper sweeps α and h on the test labels; a live service has no labels. The rule, fixed
before any test set was scored (docs/ccm_tad.md):

* α (significance level), default 0.05: a point is evidence of an anomaly when its score is
  rarer than 1 in 20 validation scores. p-values have a Pareto tail beyond the top of the
  calibration scores (detector.pvalue), so positive evidence is reachable at any calibration
  size; ties count against the new score, so a flat calibration period gives no evidence.
* ε = α / 100: the largest evidence one point can add is log(α / ε) = log 100 ≈ 4.6.
* adapt_points, default 1,000: the drift level's horizon (detector.adaptation).
* h from a **false-alarm budget** the user reads and sets: `false_alarms_per_10k` (default
  1), the expected number of alarms per 10,000 nominal points. An alarm is an excursion of s
  (a run of s > 0) whose peak passes h, so h is where the rate of such excursions meets the
  budget. Three estimates, the largest wins:
  - h_validation: from the validation period with *cross-fitted* p-values (each half scored
    against the other half, drift level running, so no point is compared with itself and drift
    between the halves shows up as it will online). The larger of (i) the excursion peaks'
    upper half fitted by an exponential tail (CUSUM excursion heights have one) with a
    *median*-based scale and extrapolated to the budget — a small validation period gives a
    stated rate instead of a wall — and (ii) the *second* largest excursion peak: the single
    worst stretch (a burst) no longer sets h by itself, as the maximum did, while the rest of
    the validation period's excursions still do (on SMD, skipping them all let test nominal
    excursions through: 6.8 false alarms / 10k against 3.4; docs/ccm_tad.md).
  - h_null: the same rate measured on 200,000 points of uniform p-values (what chance reaches).
  - h_floor: `min_alarm_points` (default 3) points of the largest evidence, log(α/ε) each: no
    single point, however rare, raises an alarm alone — on real data single extreme points
    are mostly noise, and they made storms of one-point alarms where h sat at the chance floor.
  This is the peaks-over-threshold idea of SPOT (Siffer et al., KDD 2017) applied to the
  accumulated evidence instead of the raw score. The computation lives in detector.budget,
  which the service calls again for a stream that asks for its own budget.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from detector import budget
from detector.alarm import AlarmParams
from detector.offline import evidence_of
from detector.pvalue import TailReference
from detector.smoothing import median_scores

MIN_CALIBRATION_POINTS = 20  # fewer validation scores than this: no tail can be fitted


class CalibrationSizeError(ValueError):
    """Too few validation scores to calibrate alarms at all."""


class DegenerateCalibrationError(ValueError):
    """Validation scores that cannot calibrate anything: non-finite, or all equal."""


def check_scores(scores: np.ndarray) -> None:
    """Refuse non-finite or all-equal validation scores, naming the problem.

    >>> try:
    ...     check_scores(np.zeros(30))
    ... except DegenerateCalibrationError as exc:
    ...     print(str(exc)[:38])
    all 30 validation scores equal 0 (a fl
    """
    bad = ~np.isfinite(scores)
    if bad.any():
        raise DegenerateCalibrationError(
            f"{int(bad.sum())} of {len(scores)} validation scores are not finite"
        )
    if len(scores) and float(scores.max()) == float(scores.min()):
        raise DegenerateCalibrationError(
            f"all {len(scores)} validation scores equal {float(scores[0]):g} (a flat validation "
            "period: every channel constant, or a score that ignores what changes); train on a "
            "longer or livelier nominal period"
        )


@dataclass(frozen=True)
class CalibrationRule:
    alpha: float = 0.05
    false_alarms_per_10k: float = 1.0  # budget: expected alarms per 10,000 nominal points
    delta: int = 5
    seed: int = 0
    epsilon_ratio: float = 0.01  # ε = α · epsilon_ratio
    adapt_points: int = 1000
    min_alarm_points: float = 3.0  # h ≥ this many points of the largest evidence
    skip_peaks: int = 1  # largest validation excursion peaks h may pass (detector.budget)
    max_alarm_points: float = 10.0  # h_validation ≤ this many points of the largest evidence
    median_points: int = 9  # the evidence reads the running median of this many scores
    rebaseline_after_points: int = 750  # an alarm this long re-baselines the stream (0: never)

    @property
    def epsilon(self) -> float:
        return self.alpha * self.epsilon_ratio

    @property
    def budget_per_point(self) -> float:
        return self.false_alarms_per_10k / 1e4

    def params(self, threshold: float) -> AlarmParams:
        return AlarmParams(
            self.alpha,
            threshold,
            self.delta,
            self.epsilon,
            self.adapt_points,
            self.median_points,
            self.rebaseline_after_points,
        )


def evidence_scores(
    scores: np.ndarray, rule: CalibrationRule
) -> tuple[np.ndarray, CalibrationRule]:
    """The validation scores the evidence reads — the running median of `rule.median_points`
    raw scores (detector.smoothing), from the series' first point, as a stream computes them —
    and the rule they were read with. A median that flattens a validation period whose raw
    scores vary (a score flat but for short spikes: MSL) falls back to the raw score
    (median_points = 1): equal calibration scores cannot calibrate anything."""
    raw = np.asarray(scores, np.float64)
    g = median_scores(np.empty(0), raw, rule.median_points)
    flat = len(g) and np.nanmax(g) == np.nanmin(g)
    if rule.median_points > 1 and flat and np.nanmax(raw) != np.nanmin(raw):
        return raw, dataclasses.replace(rule, median_points=1)
    return g, rule


def evidence(
    scores: np.ndarray, reference: TailReference, rule: CalibrationRule, level: float = 0.0
) -> np.ndarray:
    """β of a time-ordered score series against a reference, with the drift level running
    exactly as the online core runs it."""
    return evidence_of(scores, reference, rule.params(0.0), level)


def cross_fitted_evidence(scores: np.ndarray, rule: CalibrationRule) -> np.ndarray:
    """β of each validation point against the other half of the validation period."""
    return budget.cross_fitted_evidence(scores, rule.params(0.0))


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
    """α, h, δ, ε, adapt_points, the budget and the three h estimates, from time-ordered
    validation scores as the evidence reads them (`evidence_scores` of the raw ones)."""
    rule = rule or CalibrationRule()
    scores = np.asarray(validation_scores, np.float64)
    calibration_warning(len(scores), rule)
    check_scores(scores)
    h = budget.thresholds(
        scores,
        rule.params(0.0),
        rule.false_alarms_per_10k,
        rule.min_alarm_points,
        rule.seed,
        rule.skip_peaks,
        rule.max_alarm_points,
    )
    return {
        "alpha": rule.alpha,
        "threshold": h["threshold"],
        "delta": rule.delta,
        "epsilon": rule.epsilon,
        "adapt_points": rule.adapt_points,
        "median_points": rule.median_points,
        "rebaseline_after_points": rule.rebaseline_after_points,
        "h_validation": h["h_validation"],
        "h_null": h["h_null"],
        "h_floor": h["h_floor"],
        "false_alarms_per_10k": rule.false_alarms_per_10k,
        "min_alarm_points": rule.min_alarm_points,
        "max_alarm_points": rule.max_alarm_points,
        "validation_peak": h["validation_peak"],
    }


def alarm_params(calibration: dict[str, float]) -> AlarmParams:
    return AlarmParams(
        calibration["alpha"],
        calibration["threshold"],
        int(calibration["delta"]),
        calibration["epsilon"],
        int(calibration.get("adapt_points", 0)),
        int(calibration.get("median_points", 1)),
        int(calibration.get("rebaseline_after_points", 0)),
    )
