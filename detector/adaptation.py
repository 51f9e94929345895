"""Per-stream level of the score: slow adaptation to drift, and an operator's re-baseline.

A stream whose nominal behaviour drifts away from the calibration period would otherwise see
every point as rare: evidence never resets and the alarm never ends (on SMD machine-3-5, 22 %
of the nominal test points score above every validation point). Each stream therefore keeps

* ``level`` — an exponentially weighted mean of u_t = clip(log g_t − log median_cal −
  baseline, ±U) with rate 1 / adapt_points over every scored point (alarm or not, so a lasting
  regime change is absorbed: one bounded alarm instead of one for the rest of time), and
* ``baseline`` — a log shift an operator sets with a re-baseline ("this is the new normal"):
  the median log score of the stream's last n points, relative to the calibration median.

The level measures drift *beyond* the baseline. Before it did, a re-baselined stream's level
drifted toward the baseline itself, and its shift toward twice the intended one within a few
adapt_points (tests/detector/test_adaptation.py).

The score compared with the calibration is g_t · exp(−(baseline + max(level_{t−1}, 0))): the
level only ever makes a stream *less* sensitive than its bundle, never more, so a stream that
is quieter than the calibration period does not start alarming on its usual noise. With
adapt_points = 0 the level stays 0 (the paper's behaviour).

>>> levels = adapt_levels(0.0, np.full(4, math.e ** 2), 0.0, 2)  # scores e² over a median 1
>>> [round(x, 3) for x in levels]
[1.0, 1.5, 1.75, 1.875]
"""

from __future__ import annotations

import math

import numpy as np

LEVEL_CLIP = 10.0  # |u_t| ≤ 10: one extreme point moves the level by at most 10 / adapt_points


def adapt_level(level: float, score: float, log_median: float, adapt_points: int) -> float:
    """The level after one score (a NaN, non-positive or infinite score leaves it unchanged).

    >>> round(adapt_level(0.0, math.e ** 2, 0.0, 2), 3)
    1.0
    """
    if adapt_points <= 0 or not (score == score and score > 0.0 and score != math.inf):
        return level
    u = min(max(math.log(score) - log_median, -LEVEL_CLIP), LEVEL_CLIP)
    return level + (1.0 / adapt_points) * (u - level)


def adapt_levels(
    level: float, scores: np.ndarray, log_median: float, adapt_points: int
) -> list[float]:
    """The level after each of the scores [n], one `adapt_level` at a time.

    Sequential on purpose: the result must not depend on how a stream's points were split
    into requests, so the arithmetic is the same per point whatever the batch."""
    out = []
    for g in scores.tolist():
        level = adapt_level(level, g, log_median, adapt_points)
        out.append(level)
    return out


def log_shift(level_before: float, baseline: float) -> float:
    """Log shift applied to a point's score: baseline + max(level before the point, 0).

    >>> log_shift(-0.5, 0.25), log_shift(1.0, 0.25)
    (0.25, 1.25)
    """
    return baseline + max(level_before, 0.0)


def shifts(level_before: float, levels_after: list[float], baseline: float) -> np.ndarray:
    """`log_shift` of each point, given the level before the first and after each."""
    before = [level_before, *levels_after[:-1]]
    return np.array([log_shift(lv, baseline) for lv in before], np.float64)


def rebaseline_shift(recent_scores: np.ndarray, log_median: float) -> float:
    """The baseline that maps the median of the recent scores onto the calibration median.

    >>> round(rebaseline_shift(np.array([np.nan, 4.0, 4.0, 4.0]), math.log(1.0)), 4)
    1.3863
    """
    ok = recent_scores[np.isfinite(recent_scores) & (recent_scores > 0)]
    if len(ok) == 0:
        return 0.0
    return float(np.median(np.log(ok))) - log_median
