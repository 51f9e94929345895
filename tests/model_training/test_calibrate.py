"""The label-free rule: h never alarms on the nominal validation stream it was fitted on."""

from __future__ import annotations

import numpy as np

from detector.offline import accumulate_series, alarm_spans
from model_training.calibrate import CalibrationRule, calibrate, cross_fitted_evidence


def test_threshold_is_quiet_on_validation_and_above_chance() -> None:
    rng = np.random.default_rng(0)
    losses = rng.gamma(2.0, 0.01, size=5000)
    losses[3000:3010] *= 4  # a nominal burst the threshold must tolerate
    cal = calibrate(losses, CalibrationRule())
    assert cal["threshold"] == max(cal["h_validation"], cal["h_null"])
    beta = cross_fitted_evidence(losses, cal["alpha"], cal["epsilon"])
    s = accumulate_series(beta, 5)
    assert len(alarm_spans(s, beta, cal["threshold"])) == 0
    assert cal["h_validation"] > cal["h_null"]  # the burst, not chance, sets h here
    assert cal["epsilon"] == 1 / 5000


def test_cross_fitting_never_compares_a_loss_with_itself() -> None:
    losses = np.arange(10.0)
    beta = cross_fitted_evidence(losses, 0.5, 1e-3)
    # the first half's largest loss (4) is below every second-half loss: p = 1
    assert beta[4] == np.log(0.5 / (1 + 1e-3))
    # the second half's losses exceed all first-half losses: p = 0
    assert np.allclose(beta[5:], np.log(0.5 / 1e-3))
