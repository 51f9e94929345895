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
    calibrate,
    calibration_warning,
    cross_fitted_evidence,
    evidence,
)


def test_threshold_is_quiet_on_validation_and_above_chance() -> None:
    rng = np.random.default_rng(0)
    losses = rng.gamma(2.0, 0.01, size=5000)
    losses[3000:3030] *= 20  # a nominal burst the threshold must tolerate
    rule = CalibrationRule()
    cal = calibrate(losses, rule)
    assert cal["threshold"] == max(cal["h_validation"], cal["h_null"])
    beta = cross_fitted_evidence(losses, rule)
    s = accumulate_series(beta, 5)
    assert len(alarm_spans(s, beta, cal["threshold"])) == 0
    assert cal["h_validation"] > cal["h_null"] > 0  # the burst, not chance, sets h here
    assert cal["epsilon"] == pytest.approx(rule.alpha * rule.epsilon_ratio)


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
