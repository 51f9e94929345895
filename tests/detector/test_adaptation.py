"""Drift: a regime change gives one bounded alarm, not an alarm for the rest of time; the
offline restatement of the evidence (used for baselines and the oracle sweeps) equals the
online core's, adaptation included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.alarm import AlarmParams
from detector.calibration import Calibration
from detector.online import OnlineDetector
from detector.pvalue import TailReference
from model_training.calibrate import CalibrationRule, evidence
from tests.detector.test_online import ZeroModel


def detector(adapt_points: int, threshold: float = 8.0) -> OnlineDetector:
    """Score = mean of squares of the (unscaled) point; calibration scores ~ chi² / 2."""
    rng = np.random.default_rng(0)
    cal_scores = (rng.normal(size=(2000, 2)) ** 2).mean(axis=1)
    cal = Calibration(
        ("a", "b"),
        np.full(2, -1.0),
        np.full(2, 2.0),
        1e6,
        np.sort(cal_scores),
        AlarmParams(0.05, threshold, 5, 5e-4, adapt_points),
        window_size=4,
    )
    return OnlineDetector(cal, ZeroModel())


def level_shift(n_before: int, n_after: int, shift: float, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n_before + n_after, 2))
    x[n_before:] += shift
    return x


def test_a_persistent_level_shift_gives_one_bounded_alarm() -> None:
    x = level_shift(1000, 6000, 3.0)
    det = detector(adapt_points=300)
    res = det.step(det.new_state("s"), x, np.arange(len(x), dtype=float))
    opened = [e for e in res.events if e.kind == "opened"]
    closed = [e for e in res.events if e.kind == "closed"]
    assert len(opened) == 1 and len(closed) == 1, [(e.kind, e.at_index) for e in res.events]
    assert 1000 <= opened[0].trigger_index < 1010  # raised at once
    assert closed[0].at_index < 1000 + 3000  # and over within a bounded time
    assert not res.alarm[-2000:].any()  # the new regime is the new normal


def test_without_adaptation_the_same_shift_never_ends() -> None:
    x = level_shift(1000, 6000, 3.0)
    det = detector(adapt_points=0)
    res = det.step(det.new_state("s"), x, np.arange(len(x), dtype=float))
    assert res.alarm[-2000:].all()  # the paper's rule: in alarm for the rest of time


def test_adaptation_keeps_a_short_fault_alarmed() -> None:
    x = level_shift(1000, 0, 0.0)
    x[500:560] += 3.0  # a 60-point fault: far shorter than the adaptation horizon
    det = detector(adapt_points=2000)
    res = det.step(det.new_state("s"), x, np.arange(len(x), dtype=float))
    assert res.alarm[505:560].mean() > 0.9 and not res.alarm[:500].any()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.0, 30.0), min_size=1, max_size=120),
    st.sampled_from([0, 5, 50]),
)
def test_offline_evidence_equals_the_online_core(values: list[float], adapt: int) -> None:
    det = detector(adapt_points=adapt)
    v = np.sqrt(np.repeat(np.asarray([0.0] * 3 + values)[:, None], 2, axis=1))
    res = det.step(det.new_state("s"), v, np.arange(len(v), dtype=float))
    scored = ~res.warmup
    rule = CalibrationRule(alpha=0.05, epsilon_ratio=5e-4 / 0.05, adapt_points=adapt)
    ref = TailReference.fit(det.calibration.sorted_losses)
    np.testing.assert_allclose(
        evidence(res.score[scored], ref, rule), res.evidence[scored], rtol=0, atol=1e-12
    )


def test_after_a_rebaseline_the_level_measures_drift_beyond_it() -> None:
    """A re-baselined stream that stays in its new regime keeps the re-baseline's shift; the
    level does not drift toward it again (which doubled the shift)."""
    x = level_shift(1000, 4000, 3.0)
    det = detector(adapt_points=300, threshold=1e9)
    st = det.new_state("s")
    det.step(st, x[:1500], np.arange(1500.0))
    det.rebaseline(st, 400)
    assert st.baseline > 1.0
    det.step(st, x[1500:], np.arange(1500.0, len(x)))
    assert abs(st.level) < 0.3 * st.baseline, (st.level, st.baseline)
