"""The score the evidence reads: the median of a stream's last m scores (issue 23).

A status flag changing, or one noisy reading, makes the score jump for a point or two; such
spikes filled the upper tail of MSL's validation periods, so a sustained threefold rise during
a real fault stayed below α (D-15: 641 anomalous points, never an alarm). The p-value, the
drift level and the evidence therefore read g̃_t = the lower median of the finite scores among
g_{t−m+1..t} (`median_points` = m, 9 by default, chosen on SMD and MSL together:
bench/calibration_design.py; 1 = the raw score). The calibration is fitted on the validation
period's g̃ the same way, so a spike shorter than m/2 points is not evidence at all: a fault
must last about m/2 points to count. The API's `score` stays the raw g_t.

Exact under any batching: inputs are rounded to float32 (what a stream's ring of recent scores
keeps between requests) and the lower median is an element, never an average.

>>> median_scores(np.array([]), np.array([1.0, 9.0, 2.0, 3.0]), 3).tolist()
[1.0, 1.0, 2.0, 3.0]
>>> median_scores(np.array([5.0, 7.0]), np.array([np.nan, 1.0]), 3).tolist()  # lower median
[nan, 1.0]
"""

from __future__ import annotations

import math

import numpy as np

MAX_MEDIAN_POINTS = 512  # a stream keeps its last 512 scores (detector.stream.SCORE_HISTORY)


def median_of_one(previous: list[float], score: float) -> float:
    """`median_scores` of one score after `previous` (its m − 1 predecessors as Python floats,
    already float32-rounded, NaN where none) — the same element, without building arrays:
    a stream sending one reading at a time is the common case (about 3 µs instead of 25).

    >>> median_of_one([5.0, float("nan"), 7.0], 1.0)
    5.0
    """
    if not math.isfinite(score):
        return math.nan
    own = float(np.float32(score))
    ranked = sorted([v for v in previous if v == v] + [own])  # NaN ≠ NaN: dropped
    return ranked[(len(ranked) - 1) // 2]


def median_scores(previous: np.ndarray, scores: np.ndarray, median_points: int) -> np.ndarray:
    """g̃ [n] of scores [n] that follow `previous` (the stream's earlier scores in time order,
    NaN where it had none); NaN where the score itself is not finite. m = 1 returns the scores."""
    g = np.asarray(scores, np.float64)
    m = int(median_points)
    if m <= 1 or len(g) == 0:
        return g
    before = np.asarray(previous, np.float64)[len(previous) - min(len(previous), m - 1) :]
    pad = np.full(m - 1 - len(before), np.nan)
    seq = np.concatenate([pad, before, g]).astype(np.float32).astype(np.float64)
    win = np.lib.stride_tricks.sliding_window_view(seq, m)  # [n, m]
    missing = np.isnan(win)
    ranked = np.sort(np.where(missing, np.inf, win), axis=1)  # NaN last (as +inf)
    k = m - missing.sum(axis=1)  # finite or infinite scores in each window
    out = ranked[np.arange(len(g)), np.maximum(k - 1, 0) // 2]
    out[~np.isfinite(g)] = np.nan  # a non-finite score is no evidence (detector.online)
    return out
