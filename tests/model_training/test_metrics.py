"""Tests for model_training.metrics / model_training.vus.

VUS is checked against a slow loop oracle that follows TSB-AD's
``basic_metricor.RangeAUC_volume_opt`` (TSB-AD 1.5) step by step, and against golden values
produced by running TSB-AD 1.5 itself. One file of ~400 lines: most of it is the oracle, which
must stay next to the checks that use it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from model_training.metrics import (
    PRF,
    BestF1,
    DelayReport,
    best_f1,
    detection_delay,
    find_period,
    point_prf,
    segments,
    vus_pr,
    vus_roc,
)

# ---------------------------------------------------------------- slow reference oracles


def _brute_best_f1(labels: NDArray[np.bool_], scores: NDArray[np.float64]) -> BestF1:
    """Loop over every distinct finite score, highest first; keep the first best F1."""
    best = BestF1(0.0, 0.0, 0.0, math.inf)
    found = False
    for thr in np.unique(scores[~np.isnan(scores)])[::-1]:
        prf = point_prf(labels, scores >= thr)
        if not found or prf.f1 > best.f1:
            best = BestF1(prf.f1, prf.precision, prf.recall, float(thr))
            found = True
    return best


def _tsbad_runs(y: NDArray[np.int64]) -> list[tuple[int, int]]:
    """TSB-AD ``range_convers_new``: inclusive (start, end) of each run of ones."""
    runs, start = [], None
    for i, v in enumerate(y):
        if v == 1 and start is None:
            start = i
        if v != 1 and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(y) - 1))
    return runs


def _tsbad_merge(n: int, runs: list[tuple[int, int]], window: int) -> list[tuple[int, int]]:
    """TSB-AD ``new_sequence``: runs padded by window//2, merged when they overlap."""
    h = window // 2
    out, a = [], max(runs[0][0] - h, 0)
    for (_, e), (s_next, _) in zip(runs[:-1], runs[1:], strict=True):
        if e + h < s_next - h:
            out.append((a, e + h))
            a = s_next - h
    out.append((a, min(runs[-1][1] + h, n - 1)))
    return out


def _tsbad_soft(y: NDArray[np.int64], runs: list[tuple[int, int]], window: int) -> NDArray:
    """TSB-AD ``sequencing``: sqrt-decaying label mass around each run, clipped at 1."""
    lab = y.astype(float)
    n, h = len(y), window // 2
    for s, e in runs:
        after = np.arange(e + 1, min(e + h + 1, n))
        lab[after] += np.sqrt(1 - (after - e) / window)
        before = np.arange(max(s - h, 0), s)
        lab[before] += np.sqrt(1 - (s - before) / window)
    return np.minimum(lab, 1.0)


def _tsbad_vus(y: NDArray[np.int64], score: NDArray, window: int, thre: int) -> tuple[float, float]:
    """Loop version of TSB-AD ``RangeAUC_volume_opt``; returns (VUS-PR, VUS-ROC)."""
    n, pos = len(y), int(y.sum())
    runs = _tsbad_runs(y)
    outer = _tsbad_merge(n, runs, window)
    desc = -np.sort(-score)
    picks = np.linspace(0, n - 1, thre).astype(int)
    aps, aucs = [], []
    for w in range(window + 1):
        soft = _tsbad_soft(y, runs, w)
        groups = _tsbad_merge(n, runs, w)
        tpr_l, fpr_l, prec_l = [0.0], [0.0], []
        for i in picks:
            pred = score >= desc[i]
            lab = soft.copy()
            existence = 0
            for a, b in groups:
                lab[a : b + 1] = soft[a : b + 1] * pred[a : b + 1]
                existence += bool(pred[a : b + 1].any())
            for a, b in runs:
                lab[a : b + 1] = 1
            tp = sum(float(np.dot(lab[a : b + 1], pred[a : b + 1])) for a, b in outer)
            n_lab = sum(float(np.sum(lab[a : b + 1])) for a, b in outer)
            p_new = (pos + n_lab) / 2
            tpr_l.append(min(tp / p_new, 1) * existence / len(groups))
            fpr_l.append((pred.sum() - tp) / (n - p_new) if n > p_new else math.nan)
            prec_l.append(tp / pred.sum())
        tpr = np.array([*tpr_l, 1.0])
        fpr = np.array([*fpr_l, 1.0])
        aucs.append(float(np.dot(np.diff(fpr), (tpr[1:] + tpr[:-1]) / 2)))
        aps.append(float(np.dot(np.diff(tpr[:-1]), prec_l)))
    return float(np.mean(aps)), float(np.mean(aucs))


def _event_labels(n: int, seed: int, n_events: int = 8) -> NDArray[np.int64]:
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.int64)
    for s, ln in zip(rng.integers(0, n - 60, n_events), rng.integers(5, 50, n_events), strict=True):
        y[s : s + ln] = 1
    return y


# ---------------------------------------------------------------- segments


def test_segments_hand_cases() -> None:
    assert segments(np.array([0, 1, 1, 0, 1])).tolist() == [[1, 3], [4, 5]]
    assert segments(np.array([1, 1, 0, 0])).tolist() == [[0, 2]]
    assert segments(np.ones(3, dtype=bool)).tolist() == [[0, 3]]
    empty = segments(np.zeros(4))
    assert empty.shape == (0, 2) and empty.dtype == np.int64
    assert segments(np.array([], dtype=int)).shape == (0, 2)
    assert segments(np.array([1, 0, 1, 0, 1])).dtype == np.int64


@given(st.lists(st.booleans(), max_size=60))
def test_segments_roundtrip(flags: list[bool]) -> None:
    y = np.array(flags, dtype=bool)
    segs = segments(y)
    rebuilt = np.zeros(len(y), dtype=bool)
    for s, e in segs:
        assert s < e
        rebuilt[s:e] = True
    assert np.array_equal(rebuilt, y)
    assert np.all(segs[1:, 0] > segs[:-1, 1])  # runs are maximal: a gap between each


# ---------------------------------------------------------------- point_prf


def test_point_prf_hand_cases() -> None:
    r = point_prf(np.array([0, 1, 1, 0, 1]), np.array([0, 1, 0, 1, 1]))  # tp=2 fp=1 fn=1
    assert r == PRF(f1=2 / 3, precision=2 / 3, recall=2 / 3)
    r = point_prf([1, 1, 1, 1, 0], [1, 0, 0, 0, 0])  # tp=1 fp=0 fn=3
    assert (r.precision, r.recall) == (1.0, 0.25)
    assert r.f1 == pytest.approx(0.4)
    assert point_prf([0, 0, 0], [0, 0, 0]) == PRF(0.0, 0.0, 0.0)
    assert point_prf([1, 0], [0, 0]) == PRF(0.0, 0.0, 0.0)
    assert point_prf([0, 0], [1, 1]) == PRF(0.0, 0.0, 0.0)
    assert r.as_dict() == {"f1": r.f1, "precision": 1.0, "recall": 0.25}


def test_point_prf_rejects_mismatch() -> None:
    with pytest.raises(ValueError):
        point_prf([0, 1], [0, 1, 1])
    with pytest.raises(ValueError):
        point_prf(np.zeros((2, 2)), np.zeros((2, 2)))


# ---------------------------------------------------------------- best_f1


def test_best_f1_hand_case() -> None:
    # thr 0.8 -> F1 2/3; thr 0.4 -> tp=1, np=2 -> 0.5; thr 0.35 -> tp=2, np=3 -> 0.8
    r = best_f1([0, 0, 1, 1, 0], [0.1, 0.4, 0.35, 0.8, 0.2])
    assert r.threshold == 0.35
    assert r.f1 == pytest.approx(0.8)
    assert (r.precision, r.recall) == (pytest.approx(2 / 3), 1.0)
    assert r.as_dict()["threshold"] == 0.35


def test_best_f1_nan_and_degenerate() -> None:
    # NaN never predicted; its anomaly still counts as a miss
    r = best_f1([1, 1, 0], [np.nan, 0.9, 0.1])
    assert (r.f1, r.precision, r.recall, r.threshold) == (pytest.approx(2 / 3), 1.0, 0.5, 0.9)
    assert best_f1([1, 0], [np.nan, np.nan]) == BestF1(0.0, 0.0, 0.0, math.inf)
    assert best_f1([0, 0, 0], [0.3, 0.2, 0.1]).f1 == 0.0
    # ties in F1 (thr 4: 2*1/(1+2); thr 1: 2*2/(4+2)) -> highest threshold
    assert best_f1([1, 0, 0, 1], [4.0, 3.0, 2.0, 1.0]).threshold == 4.0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.one_of(
                st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.0, math.nan, math.inf, -math.inf]),
                st.floats(-1e3, 1e3, allow_nan=False),
            ),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_best_f1_matches_threshold_loop(pairs: list[tuple[bool, float]]) -> None:
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs])
    fast, slow = best_f1(y, s), _brute_best_f1(y, s)
    assert fast.f1 == slow.f1
    assert fast.threshold == slow.threshold
    assert (fast.precision, fast.recall) == (slow.precision, slow.recall)


def test_best_f1_large_input_is_fast_enough() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(700_000) < 0.05
    s = rng.random(700_000) + 0.5 * y
    r = best_f1(y, s)
    assert 0.0 < r.f1 <= 1.0
    assert r.as_dict()["f1"] == r.f1


# ---------------------------------------------------------------- detection_delay


def test_detection_delay_hand_cases() -> None:
    labels = [0, 1, 1, 1, 0, 1, 1, 0, 1, 1]
    preds = [1, 0, 0, 1, 0, 1, 0, 1, 0, 0]  # before seg 1 ignored; seg 3 missed
    assert detection_delay(labels, preds) == DelayReport(
        mean_delay=1.0, n_detected=2, n_segments=3, delays=[2, 0]
    )
    assert detection_delay([0, 1, 1], [0, 0, 0]) == DelayReport(None, 0, 1, [])
    assert detection_delay([0, 0], [1, 1]) == DelayReport(None, 0, 0, [])
    assert detection_delay([1, 1, 1], [0, 0, 1]).delays == [2]


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=50))
def test_detection_delay_matches_loop(pairs: list[tuple[bool, bool]]) -> None:
    y = np.array([p[0] for p in pairs], dtype=bool)
    p = np.array([p[1] for p in pairs], dtype=bool)
    expected = []
    for s, e in segments(y):
        hit = np.flatnonzero(p[s:e])
        if hit.size:
            expected.append(int(hit[0]))
    rep = detection_delay(y, p)
    assert rep.delays == expected
    assert rep.n_detected == len(expected) and rep.n_segments == len(segments(y))
    assert rep.mean_delay == (float(np.mean(expected)) if expected else None)


# ---------------------------------------------------------------- VUS


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=40).filter(any),
    st.data(),
    st.integers(0, 10),
    st.sampled_from([1, 6, 250]),
)
def test_vus_matches_loop_oracle(
    flags: list[bool], data: st.DataObject, window: int, thre: int
) -> None:
    y = np.array(flags, dtype=np.int64)
    scores = np.array(
        data.draw(
            st.lists(
                st.one_of(st.sampled_from([0.0, 0.25, 1.0]), st.floats(0, 1)),
                min_size=len(y),
                max_size=len(y),
            )
        )
    )
    ref_pr, ref_roc = _tsbad_vus(y, scores, window, thre)
    # all-anomalous series: TSB-AD's FPR is 0/0, so VUS-ROC is NaN in both
    assert vus_pr(y, scores, window, thresholds=thre) == pytest.approx(ref_pr, abs=1e-12)
    got_roc = vus_roc(y, scores, window, thresholds=thre)
    assert got_roc == pytest.approx(ref_roc, abs=1e-12, nan_ok=True)


@pytest.mark.parametrize("seed", range(4))
def test_vus_matches_loop_oracle_on_event_series(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = _event_labels(300, seed, n_events=4)
    scores = rng.random(300) + 0.7 * np.roll(y, int(rng.integers(-6, 7)))
    ref_pr, ref_roc = _tsbad_vus(y, scores, 14, 250)
    assert vus_pr(y, scores, 14) == pytest.approx(ref_pr, abs=1e-12)
    assert vus_roc(y, scores, 14) == pytest.approx(ref_roc, abs=1e-12)


def test_vus_golden_values_from_tsbad() -> None:
    """Numbers printed by TSB-AD 1.5 ``basic_metricor().RangeAUC_volume_opt`` itself."""
    y = np.r_[np.zeros(40), np.ones(10), np.zeros(50)].astype(int)
    late = np.r_[np.zeros(45), np.ones(10), np.zeros(45)]
    assert vus_pr(y, late, 8) == pytest.approx(0.443428795704343, abs=1e-12)
    assert vus_roc(y, late, 8) == pytest.approx(0.781820945776705, abs=1e-12)

    rng = np.random.default_rng(2024)
    n = 3000
    y = np.zeros(n, dtype=int)
    for s0, ln in zip(rng.integers(0, n - 80, 6), rng.integers(1, 60, 6), strict=True):
        y[s0 : s0 + ln] = 1
    score = rng.random(n) + 0.6 * np.roll(y, 7)
    assert vus_pr(y, score, 40) == pytest.approx(0.6812211254573771, abs=1e-12)
    assert vus_roc(y, score, 40) == pytest.approx(0.9150269395197994, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=80).filter(any), st.integers(0, 30))
def test_vus_perfect_score_is_one(flags: list[bool], window: int) -> None:
    y = np.array(flags, dtype=float)
    assert vus_pr(y, y, window) == 1.0
    if all(flags):
        assert math.isnan(vus_roc(y, y, window))  # no normal points: FPR undefined, as TSB-AD
    else:
        assert vus_roc(y, y, window) == pytest.approx(1.0, abs=1e-12)


def test_vus_random_score_is_near_anomaly_ratio() -> None:
    y = _event_labels(4000, seed=3)
    ratio = y.mean()
    values = [vus_pr(y, np.random.default_rng(s).random(4000), 20) for s in range(3)]
    for v in values:
        assert 0.5 * ratio < v < 3 * ratio
    assert 0.4 < vus_roc(y, np.random.default_rng(9).random(4000), 20) < 0.75


def test_vus_increases_as_score_improves() -> None:
    y = _event_labels(4000, seed=5)
    noise = np.random.default_rng(1).random(4000)
    values = [vus_pr(y, a * y + (1 - a) * noise, 20) for a in np.linspace(0, 1, 9)]
    assert all(b >= a for a, b in zip(values[:-1], values[1:], strict=True))
    assert values[0] < 0.2 and values[-1] == 1.0
    # catching the event on time beats catching it late
    assert vus_pr(y, y + 0.1 * noise, 20) > vus_pr(y, np.roll(y, 15) + 0.1 * noise, 20)


def test_vus_nan_scores_rank_lowest() -> None:
    y = _event_labels(500, seed=7, n_events=3)
    s = np.random.default_rng(2).random(500) + 0.5 * y
    with_nan = s.copy()
    with_nan[:30] = np.nan
    lowest = s.copy()
    lowest[:30] = s.min() - 1.0
    assert vus_pr(y, with_nan, 10) == pytest.approx(vus_pr(y, lowest, 10), abs=1e-12)


def test_vus_defaults_and_errors() -> None:
    y = _event_labels(800, seed=4, n_events=3)
    s = np.sin(2 * np.pi * np.arange(800) / 40) + 2.0 * y
    assert find_period(s) == 40
    assert vus_pr(y, s) == vus_pr(y, s, sliding_window=40)
    assert vus_pr(y, s, 10, version="opt_mem") == vus_pr(y, s, 10)
    with pytest.raises(ValueError):
        vus_pr(np.zeros(10), np.ones(10), 4)
    with pytest.raises(ValueError):
        vus_pr(y, s[:-1], 4)
    with pytest.raises(ValueError):
        vus_roc(y, s, 4, version="bogus")  # type: ignore[arg-type]


def test_vus_large_input_runs() -> None:
    y = _event_labels(100_000, seed=11, n_events=40)
    s = np.random.default_rng(0).random(100_000) + 0.5 * y
    assert 0.0 < vus_pr(y, s, 150) < 1.0


# ---------------------------------------------------------------- find_period


def _naive_period(x: NDArray[np.float64]) -> int:
    """Direct-sum ACF + TSB-AD's peak rule, to check the FFT path."""
    xc = x - x.mean()
    n = len(x)
    acf = np.array([np.dot(xc[: n - k], xc[k:]) for k in range(min(n, 401))]) / np.dot(xc, xc)
    tail = acf[3:]
    peaks = [i for i in range(1, len(tail) - 1) if tail[i - 1] < tail[i] > tail[i + 1]]
    if not peaks:
        return 125
    best = max(peaks, key=lambda i: (tail[i], i))
    return 125 if best < 3 or best > 300 else best + 3


@pytest.mark.parametrize("seed", range(6))
def test_find_period_matches_direct_acf(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 1500))
    period = rng.uniform(5, 320)
    x = np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(scale=rng.uniform(0, 1.5), size=n)
    assert find_period(x) == _naive_period(x)


def test_find_period_cases() -> None:
    t = np.arange(3000)
    assert find_period(np.sin(2 * np.pi * t / 50)) == 50
    two_d = np.stack([np.sin(2 * np.pi * t / 24), np.zeros(3000)], axis=1)
    assert find_period(two_d) == 24  # first channel, as TSB-AD's scripts
    assert find_period(np.ones(100)) == 125  # no variance
    assert find_period(np.arange(4.0)) == 125  # too short
    assert find_period(np.sin(2 * np.pi * t / 1000)) == 125  # no peak within 400 lags
    assert find_period(np.sin(2 * np.pi * t / 4)) == 125  # peak lag below 6
    warm = np.r_[np.full(20, np.nan), np.sin(2 * np.pi * t / 50)]
    assert find_period(warm) == 50
