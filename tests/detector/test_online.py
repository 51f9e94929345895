"""The online algorithm against its definition, on hand-made and generated evidence."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.alarm import AlarmParams, accumulate
from detector.calibration import Calibration
from detector.errors import ChannelCountError, NonFiniteValueError, OutOfOrderError
from detector.offline import accumulate_series, alarm_spans
from detector.online import OnlineDetector


class ZeroModel:
    """Reconstructs every last point as 0, so a point's score is the mean of its squares."""

    def reconstruct(self, windows: np.ndarray) -> np.ndarray:
        return np.zeros((len(windows), windows.shape[-1]), np.float32)


def toy_detector(params: AlarmParams) -> OnlineDetector:
    """Two channels, window 4, calibration scores 0..1; scale_min −1, range 2: scaled value ==
    raw value, so score == value²."""
    cal = Calibration(
        ("a", "b"),
        np.full(2, -1.0),
        np.full(2, 2.0),
        1e6,
        np.linspace(0.0, 1.0, 101),
        params,
        window_size=4,
    )
    return OnlineDetector(cal, ZeroModel())


def detector(threshold: float = 3.0, delta: int = 5, alpha: float = 0.05) -> OnlineDetector:
    return toy_detector(AlarmParams(alpha, threshold, delta, 1e-3))


def feed(scores: list[float], det: OnlineDetector | None = None):
    det = det or detector()
    state = det.new_state("s")
    values = np.sqrt(np.repeat(np.asarray([0.0] * 3 + scores)[:, None], 2, axis=1))
    return det, state, det.step(state, values, np.arange(len(values), dtype=float))


def test_accumulate_rules_by_hand() -> None:
    assert accumulate(0.0, 0, -2.0, 5) == (0.0, 1)
    assert accumulate(1.0, 4, 0.5, 5) == (1.5, 0)  # only four negatives before: no reset
    assert accumulate(7.0, 5, 3.0, 5) == (0.0, 0)  # five negatives before: reset
    assert accumulate(2.0, 0, -1.5, 5) == (0.5, 1)


evidence_lists = st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=200)


@given(evidence_lists, st.integers(1, 8))
def test_accumulated_evidence_definition(beta: list[float], delta: int) -> None:
    b = np.asarray(beta)
    s = accumulate_series(b, delta)
    assert (s >= 0).all()
    prev = 0.0
    for t in range(len(b)):
        window = b[max(0, t - delta) : t]
        if t >= delta and (window < 0).all():
            assert s[t] == 0.0
        else:
            assert s[t] == pytest.approx(max(prev + b[t], 0.0))
        prev = s[t]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.2), min_size=1, max_size=150), st.floats(0.5, 6.0))
def test_online_alarms_equal_definition(scores: list[float], threshold: float) -> None:
    det, state, res = feed(scores, detector(threshold))
    scored = ~res.warmup
    assert np.allclose(res.accumulated, accumulate_series(res.evidence, 5, scored))
    spans = alarm_spans(res.accumulated, res.evidence, threshold)
    opened = [e for e in res.events if e.kind == "opened"]
    closed = [e for e in res.events if e.kind == "closed"]
    assert [(e.onset_index, e.trigger_index) for e in opened] == [(a, b) for a, b, _, _ in spans]
    assert [e.offset_index for e in closed] == [c for _, _, c, d in spans if d < len(scores) + 2]
    s, beta = res.accumulated, res.evidence
    for on, trig, off, last in spans:  # the paper's definitions, checked by brute force
        assert s[on] == 0 and (s[on + 1 : trig] > 0).all()
        later_positive = [t for t in range(trig + 1, last + 1) if beta[t] > 0]
        assert off == (later_positive[-1] if later_positive else trig)
    assert (res.alarm == (res.accumulated > threshold)).all()


def test_alarm_opens_and_closes_with_backtracking() -> None:
    # warm-up 3 points, then quiet, a burst of rare losses, and quiet again
    det, _, res = feed([0.1] * 10 + [4.0, 4.0, 4.0, 0.1] + [0.1] * 10)  # 4: far in the tail
    kinds = [e.kind for e in res.events]
    assert kinds == ["opened", "closed"]
    opened, closed = res.events
    # index 13 follows ten negative evidences, so s_13 = 0 (reset: β_13 is not added);
    # s_14 = β_14 = log(0.05 / 0.001) = 3.9 > 3 triggers
    assert opened.trigger_index == 14
    assert opened.onset_index == 13  # last s = 0 before the trigger
    assert closed.offset_index == 15  # last β > 0 inside the alarm
    assert closed.top_channels and set(closed.top_channels) <= {"a", "b"}


def test_bad_points_raise_precise_errors_and_leave_state_untouched() -> None:
    det = detector()
    state = det.new_state("pump-7")
    det.step(state, np.zeros((5, 2)), np.arange(5.0))
    with pytest.raises(ChannelCountError, match="pump-7"):
        det.step(state, np.zeros((1, 3)), np.array([9.0]))
    with pytest.raises(NonFiniteValueError, match=r"values\[1\]\.b"):
        det.step(state, np.array([[0.0, 0.0], [0.0, np.nan]]), np.array([9.0, 10.0]))
    with pytest.raises(OutOfOrderError, match=r"timestamps\[0\]"):
        det.step(state, np.zeros((1, 2)), np.array([4.0]))
    assert state.count == 5 and state.last_ts == 4.0


def test_batch_over_streams_equals_streams_one_by_one() -> None:
    det = detector(threshold=1.0)
    rng = np.random.default_rng(3)
    data = {k: np.sqrt(rng.uniform(0, 1.1, size=(40, 2))) for k in ("x", "y", "z")}
    single = {k: det.step(det.new_state(k), v, np.arange(40.0)) for k, v in data.items()}
    states = {k: det.new_state(k) for k in data}
    batched: dict[str, list] = {k: [] for k in data}
    for lo in range(0, 40, 7):
        batch = [
            (states[k], v[lo : lo + 7], np.arange(lo, min(lo + 7, 40), dtype=float))
            for k, v in data.items()
        ]
        for k, r in zip(data, det.step_batch(batch), strict=True):
            batched[k].append(r)
    for k in data:
        acc = np.concatenate([r.accumulated for r in batched[k]])
        assert np.array_equal(acc, single[k].accumulated)
        events = [e for r in batched[k] for e in r.events]
        assert events == single[k].events


def test_adopt_carries_the_window_and_closes_an_open_alarm() -> None:
    old_det, new_det = detector(threshold=1.0), detector(threshold=50.0)
    _, st, res = feed([0.1] * 10 + [4.0] * 3, old_det)
    assert st.alarm is not None
    new, events = new_det.adopt(st, old_det)
    assert [e.kind for e in events] == ["closed"] and events[0].at_index == st.count - 1
    assert (new.count, new.last_ts, new.alarms_opened) == (st.count, st.last_ts, 1)
    assert (new.buffer == st.buffer).all() and new.buffer is not st.buffer
    assert (new.s, new.level, new.alarm, new.params) == (0.0, 0.0, None, None)
    more = np.sqrt(np.full((3, 2), 0.1))
    out = new_det.step(new, more, np.arange(new.count, new.count + 3, dtype=float))
    assert not out.warmup.any() and out.index.tolist() == [16, 17, 18]


def test_a_column_major_batch_scores_bit_for_bit_like_a_row_major_one() -> None:
    """The service parses named channels column by column; numpy's reductions round by memory
    order, so the core scores every batch row-major (issue 23 found 1-ulp differences)."""
    from detector.score import ChannelScore

    rng = np.random.default_rng(5)
    c = 6
    train = rng.normal(size=(400, c))
    basis = np.linalg.qr(rng.normal(size=(c, 3)))[0].T.copy()
    score = ChannelScore("hybrid", np.ones(c), np.full(c, 0.5), train.mean(axis=0), basis)
    x = rng.normal(size=(57, c))
    err = rng.uniform(size=(57, c))
    row = score.score(err, x)
    col = score.score(np.asfortranarray(err), np.asfortranarray(x))
    assert np.array_equal(row, col)
