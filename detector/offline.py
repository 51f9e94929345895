"""The alarm rules of `detector.online`, over whole arrays at once.

The evaluator sweeps α and h over a finished score series (the paper's oracle protocol), which
would be too slow point by point. These functions restate the same rules vectorised; a
property test checks they agree with the online state machine on arbitrary evidence.
"""

from __future__ import annotations

import numpy as np

from detector.adaptation import adapt_levels, rebaseline_shift, shifts
from detector.alarm import AlarmParams, accumulate
from detector.pvalue import TailReference
from detector.smoothing import median_scores
from detector.stream import SCORE_HISTORY


def accumulate_series(
    evidence: np.ndarray, delta: int, scored: np.ndarray | None = None
) -> np.ndarray:
    """s_t for a whole series; unscored (warm-up) points hold s = 0 and reset the run.

    >>> accumulate_series(np.array([1.0, -0.5, 2.0]), delta=5).tolist()
    [1.0, 0.5, 2.5]
    """
    s_out = np.zeros(len(evidence))
    s, run = 0.0, 0
    mask = np.ones(len(evidence), bool) if scored is None else scored
    for t, (b, ok) in enumerate(zip(evidence.tolist(), mask.tolist(), strict=True)):
        if ok:
            s, run = accumulate(s, run, b, delta)
        else:
            s, run = 0.0, 0
        s_out[t] = s
    return s_out


def alarm_spans(accumulated: np.ndarray, evidence: np.ndarray, threshold: float) -> np.ndarray:
    """Alarms as rows (onset t_a*, trigger t_a, offset t_b*, last alarmed t_b), int64 [K, 4].

    >>> s = np.array([0, 1, 3, 5, 4, 0.5, 0]); b = np.array([0, 1, 2, 2, -1, -3.5, -1])
    >>> alarm_spans(s, b, 2.0).tolist()
    [[0, 2, 3, 4]]
    """
    above = accumulated > threshold
    n = len(above)
    if not above.any():
        return np.empty((0, 4), np.int64)
    edges = np.diff(np.concatenate([[False], above, [False]]).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    idx = np.arange(n)
    last_zero = np.maximum.accumulate(np.where(accumulated == 0, idx, -1))
    onset = np.where(starts > 0, last_zero[np.maximum(starts - 1, 0)], -1)
    onset = np.where(onset >= 0, onset, starts)
    last_pos = np.maximum.accumulate(np.where(evidence > 0, idx, -1))
    offset = last_pos[ends]
    offset = np.where(offset > starts, offset, starts)
    return np.stack([onset, starts, offset, ends], axis=1).astype(np.int64)


def span_predictions(spans: np.ndarray, n: int) -> np.ndarray:
    """Point labels [n] int8: 1 on every [onset, offset] of the spans (inclusive)."""
    delta = np.zeros(n + 1, np.int64)
    np.add.at(delta, spans[:, 0], 1)
    np.add.at(delta, spans[:, 2] + 1, -1)
    return (np.cumsum(delta[:n]) > 0).astype(np.int8)


def evidence_from(
    scores: np.ndarray,
    scored: np.ndarray,
    reference: TailReference,
    params: AlarmParams,
    level: float = 0.0,
    baseline: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """p-values [n] (NaN where not `scored`), β [n] (0 there) and the drift level after each
    point of time-ordered scores [n] as the evidence reads them, from a drift level and a
    re-baseline shift, exactly as the online core runs them (detector.online)."""
    g = np.asarray(scores, np.float64)
    levels = adapt_levels(level, g, reference.log_median + baseline, params.adapt_points)
    shift = shifts(level, levels, baseline) if len(g) else np.zeros(0)
    p = np.full(len(g), np.nan)
    p[scored] = reference.p_values(g[scored] * np.exp(-shift[scored]))
    with np.errstate(invalid="ignore"):
        beta = np.where(scored, np.log(params.alpha / (p + params.epsilon)), 0.0)
    return p, beta, levels


def evidence_of(
    scores: np.ndarray, reference: TailReference, params: AlarmParams, level: float = 0.0
) -> np.ndarray:
    """β of a time-ordered series of finite scores against a reference, drift level running."""
    g = np.asarray(scores, np.float64)
    return evidence_from(g, np.ones(len(g), bool), reference, params, level)[1]


def stream_series(
    scores: np.ndarray, reference: TailReference, params: AlarmParams
) -> tuple[np.ndarray, np.ndarray]:
    """(s, β) [n] of one stream's raw scores from its first point (NaN: warm-up), exactly as
    the online core computes them: the running median (detector.smoothing), the drift level,
    p-values, the accumulator, and the re-baseline after an alarm of
    `params.rebaseline_after_points` points. Vectorised between re-baselines, which are rare.

    >>> p = AlarmParams(0.05, 5.0, epsilon=0.0005, rebaseline_after_points=3)
    >>> ref = TailReference.fit(np.linspace(0.0, 1.0, 100))
    >>> s, _ = stream_series(np.r_[np.full(5, 0.5), np.full(8, 50.0)], ref, p)
    >>> [round(x, 1) for x in s[6:].tolist()]  # alarm (s > 5) for 3 points, then the new normal
    [4.6, 9.2, 13.8, 18.4, 0.0, 0.0, 0.0]
    """
    raw = np.asarray(scores, np.float64)
    g = median_scores(np.empty(0), raw, params.median_points)  # [n] g̃
    warm = np.isnan(raw)
    ok = np.isfinite(g) & ~warm
    n, after = len(raw), params.rebaseline_after_points
    s_out, beta = np.zeros(n), np.zeros(n)
    s, run, trigger, level, baseline, start = 0.0, 0, -1, 0.0, 0.0, 0
    while start < n:
        beta[start:] = evidence_from(g[start:], ok[start:], reference, params, level, baseline)[1]
        start_next = n
        for t in range(start, n):
            s, run = (0.0, 0) if warm[t] else accumulate(s, run, float(beta[t]), params.delta)
            if after > 0 and trigger >= 0 and t - trigger >= after:
                s, run, trigger = 0.0, 0, -1
                recent = raw[max(t + 1 - min(after, SCORE_HISTORY), 0) : t + 1]
                rounded = recent.astype(np.float32).astype(np.float64)  # as the ring keeps them
                baseline = rebaseline_shift(rounded, reference.log_median)
                level, start_next = 0.0, t + 1
            elif s > params.threshold:
                trigger = t if trigger < 0 else trigger
            else:
                trigger = -1
            s_out[t] = s
            if start_next <= t + 1:
                break
        start = start_next
    return s_out, beta


def excursion_peaks(accumulated: np.ndarray) -> np.ndarray:
    """The peak of s in each maximal run of s > 0, in time order.

    >>> excursion_peaks(np.array([0, 1.0, 3.0, 0, 0, 2.0, 0])).tolist()
    [3.0, 2.0]
    """
    pos = np.asarray(accumulated) > 0
    edges = np.diff(np.concatenate([[0], pos.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return np.array([float(accumulated[a:b].max()) for a, b in zip(starts, ends, strict=True)])


def replay_alarm_fraction(
    validation_scores: np.ndarray, reference: TailReference, params: AlarmParams
) -> float:
    """Share of a nominal series' points inside an alarm when replayed against the reference
    (a bundle's own time-ordered validation scores against its calibration)."""
    beta = evidence_of(validation_scores, reference, params)
    s = accumulate_series(beta, params.delta)
    preds = span_predictions(alarm_spans(s, beta, params.threshold), len(s))
    return float(preds.mean()) if len(preds) else 0.0
