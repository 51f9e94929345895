"""The running median the evidence reads and the re-baseline after a long alarm (issue 23):
the online core equals its offline restatement under any batching."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.alarm import AlarmParams
from detector.offline import alarm_spans, stream_series
from detector.online import OnlineDetector
from detector.smoothing import median_scores
from tests.detector.test_online import toy_detector


def detector(median: int, after: int, adapt: int = 50, threshold: float = 8.0) -> OnlineDetector:
    return toy_detector(AlarmParams(0.05, threshold, 5, 5e-4, adapt, median, after))


def values_of(scores: list[float]) -> np.ndarray:
    """Raw points [3 + n, 2] whose scores are `scores` after a 3-point warm-up."""
    return np.sqrt(np.repeat(np.asarray([0.0] * 3 + scores)[:, None], 2, axis=1))


@given(
    st.lists(st.floats(0.0, 40.0, allow_nan=False), min_size=1, max_size=40),
    st.integers(1, 9),
)
def test_median_scores_do_not_depend_on_batching(scores: list[float], m: int) -> None:
    g = np.asarray(scores)
    whole = median_scores(np.empty(0), g, m)
    cut = len(g) // 2
    first = median_scores(np.empty(0), g[:cut], m)
    second = median_scores(g[:cut].astype(np.float32), g[cut:], m)
    assert np.array_equal(whole, np.concatenate([first, second]))
    assert all(np.float32(x) in g.astype(np.float32) for x in whole)  # an element, no average


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.one_of(st.floats(0.0, 1.0), st.floats(20.0, 400.0)), min_size=1, max_size=160),
    st.integers(1, 7),
    st.integers(0, 25),
    st.lists(st.integers(1, 30), min_size=1, max_size=12),
)
def test_online_in_any_batches_equals_the_offline_series(
    scores: list[float], median: int, after: int, cuts: list[int]
) -> None:
    det = detector(median, after)
    values = values_of(scores)
    state = det.new_state("s")
    parts, at, k = [], 0, 0
    while at < len(values):  # the stream fed in the drawn batch sizes
        n = min(cuts[k % len(cuts)], len(values) - at)
        k += 1
        parts.append(det.step(state, values[at : at + n], np.arange(at, at + n, dtype=float)))
        at += n
    s_on = np.concatenate([p.accumulated for p in parts])
    beta_on = np.concatenate([p.evidence for p in parts])
    raw = np.concatenate([p.score for p in parts])
    s_off, beta_off = stream_series(raw, det.calibration.reference, det.calibration.params)
    np.testing.assert_allclose(s_on, s_off, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(beta_on, beta_off, rtol=1e-12, atol=1e-12)
    spans = alarm_spans(s_off, beta_off, det.calibration.params.threshold)
    opened = [e.trigger_index for p in parts for e in p.events if e.kind == "opened"]
    assert opened == spans[:, 1].tolist()
    if after:  # no alarm outlasts the re-baseline
        closed = [e for p in parts for e in p.events if e.kind == "closed"]
        assert all(e.at_index - e.trigger_index <= after for e in closed)
        assert state.alarm is None or state.count - 1 - state.alarm.trigger_index < after


def test_a_regime_the_calibration_never_saw_is_one_alarm_of_k_points() -> None:
    det = detector(median=3, after=20, adapt=0)
    res = det.step(det.new_state("s"), values_of([0.5] * 30 + [60.0] * 300), np.arange(333.0))
    opened = [e for e in res.events if e.kind == "opened"]
    closed = [e for e in res.events if e.kind == "closed"]
    assert len(opened) == 1 and len(closed) == 1
    assert closed[0].at_index - closed[0].trigger_index == 20
    assert not res.alarm[closed[0].at_index :].any()  # 60 is the stream's new normal
    without = detector(median=3, after=0, adapt=0)
    res = without.step(
        without.new_state("s"), values_of([0.5] * 30 + [60.0] * 300), np.arange(333.0)
    )
    assert res.alarm[-1]  # without it the same stream is in alarm for ever


def test_a_two_point_spike_is_no_evidence_under_a_median_of_five() -> None:
    spike = [0.5] * 30 + [500.0] * 2 + [0.5] * 30
    quiet = detector(median=5, after=0, threshold=3.0)
    res = quiet.step(quiet.new_state("s"), values_of(spike), np.arange(65.0))
    assert (res.evidence <= 0).all() and not res.alarm.any()
    raw = detector(median=1, after=0, threshold=3.0)
    res = raw.step(raw.new_state("s"), values_of(spike), np.arange(65.0))
    assert res.alarm.any()
