"""The alarm rules of `detector.online`, over whole arrays at once.

The evaluator sweeps α and h over a finished score series (the paper's oracle protocol), which
would be too slow point by point. These functions restate the same rules vectorised; a
property test checks they agree with the online state machine on arbitrary evidence.
"""

from __future__ import annotations

import numpy as np

from detector.adaptation import adapt_levels, shifts
from detector.alarm import AlarmParams, accumulate
from detector.pvalue import TailReference


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


def evidence_of(
    scores: np.ndarray, reference: TailReference, params: AlarmParams, level: float = 0.0
) -> np.ndarray:
    """β of a time-ordered score series against a reference, with the drift level running
    exactly as the online core runs it (detector.online)."""
    g = np.asarray(scores, np.float64)
    levels = adapt_levels(level, g, reference.log_median, params.adapt_points)
    shift = shifts(level, levels, 0.0) if len(g) else np.zeros(0)
    p = reference.p_values(g * np.exp(-shift))
    return np.asarray(np.log(params.alpha / (p + params.epsilon)))


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
