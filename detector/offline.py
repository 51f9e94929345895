"""The alarm rules of `detector.online`, over whole arrays at once.

The evaluator sweeps α and h over a finished score series (the paper's oracle protocol), which
would be too slow point by point. These functions restate the same rules vectorised; a
property test checks they agree with the online state machine on arbitrary evidence.
"""

from __future__ import annotations

import numpy as np

from detector.alarm import accumulate


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
