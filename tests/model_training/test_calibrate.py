"""The label-free rule: h never alarms on the nominal validation stream it was fitted on, is
never 0, and leaves positive evidence reachable at any calibration size."""

from __future__ import annotations

import numpy as np
import pytest

from detector.offline import accumulate_series, alarm_spans
from detector.pvalue import TailReference
from model_training.calibrate import (
    CalibrationRule,
    CalibrationSizeError,
    DegenerateCalibrationError,
    calibrate,
    calibration_warning,
    cross_fitted_evidence,
    evidence,
)


def test_threshold_is_the_largest_estimate_and_a_burst_does_not_set_it() -> None:
    rng = np.random.default_rng(0)
    clean = rng.gamma(2.0, 0.01, size=5000)
    bursty = clean.copy()
    bursty[3000:3030] *= 20  # a burst in the validation period
    rule = CalibrationRule()
    cal, cal_clean = calibrate(bursty, rule), calibrate(clean, rule)
    assert cal["threshold"] == max(cal["h_validation"], cal["h_null"], cal["h_floor"])
    assert cal["h_floor"] == pytest.approx(rule.min_alarm_points * np.log(100))  # > 1 point
    # the burst raises the peak of s a lot but h only a little: h is not the worst stretch
    assert cal["validation_peak"] > 3 * cal["threshold"]
    assert cal["h_validation"] < 1.5 * max(cal_clean["h_validation"], 1.0)
    beta = cross_fitted_evidence(clean, rule)
    spans = alarm_spans(accumulate_series(beta, 5), beta, cal_clean["threshold"])
    assert len(spans) <= 2  # the budget: about 1 per 10,000 points, 5,000 here
    assert cal["epsilon"] == pytest.approx(rule.alpha * rule.epsilon_ratio)


def test_a_larger_false_alarm_budget_lowers_h() -> None:
    rng = np.random.default_rng(3)
    losses = rng.gamma(2.0, 0.01, size=3000) * (1 + 0.5 * np.sin(np.arange(3000) / 300))
    strict = calibrate(losses, CalibrationRule(false_alarms_per_10k=0.5, min_alarm_points=0))
    loose = calibrate(losses, CalibrationRule(false_alarms_per_10k=20, min_alarm_points=0))
    assert loose["threshold"] < strict["threshold"]
    assert loose["false_alarms_per_10k"] == 20


def test_equal_or_non_finite_validation_scores_are_refused() -> None:
    with pytest.raises(DegenerateCalibrationError, match="all 200 validation scores equal 2"):
        calibrate(np.full(200, 2.0))
    with pytest.raises(DegenerateCalibrationError, match="not finite"):
        calibrate(np.r_[np.ones(100), np.nan, np.arange(100.0)])


def test_ties_with_the_calibration_scores_are_no_evidence() -> None:
    losses = np.r_[np.full(300, 2.0), np.linspace(2.0, 3.0, 20)]  # mostly one value
    rule = CalibrationRule(adapt_points=0)
    beta = evidence(np.full(50, 2.0), TailReference.fit(losses), rule)
    assert (beta < 0).all()  # a score equal to most of the calibration is ordinary


def test_cross_fitting_never_compares_a_loss_with_itself() -> None:
    losses = np.arange(1.0, 41.0)
    rule = CalibrationRule(alpha=0.5, adapt_points=0)
    beta = cross_fitted_evidence(losses, rule)
    # the first half's largest loss (20) is below every second-half loss: p = 1
    assert beta[19] == pytest.approx(np.log(0.5 / (1 + 0.5 * rule.epsilon_ratio)))
    # the second half's losses exceed all first-half losses: in the tail, p < 1/20
    assert (beta[20:] > np.log(0.5 / (1 / 20 + 0.005))).all()


@pytest.mark.parametrize("n_cal", [20, 60, 100, 5000])
def test_positive_evidence_is_reachable_at_any_calibration_size(n_cal: int) -> None:
    rng = np.random.default_rng(1)
    losses = rng.gamma(2.0, 0.01, size=n_cal)
    rule = CalibrationRule(alpha=0.01)  # α · n ≤ 1 for n ≤ 100: ε = 1/n made β ≤ 0 here
    cal = calibrate(losses, rule)
    assert cal["threshold"] > 0
    gross = np.full(30, 50 * losses.max())  # a gross fault, 50 × the largest nominal loss
    beta = evidence(gross, TailReference.fit(losses), rule)
    assert (beta > 0).all()
    assert accumulate_series(beta, rule.delta).max() > cal["threshold"]


def test_too_small_calibration_sets_are_named() -> None:
    rule = CalibrationRule(alpha=0.01)
    with pytest.raises(CalibrationSizeError, match="19 validation points"):
        calibration_warning(19, rule)
    note = calibration_warning(200, rule)
    assert note is not None and "200 validation points" in note and "1000" in note
    assert calibration_warning(5000, rule) is None
