"""The alarm threshold h from a false-alarm budget: expected false alarms per 10,000 points.

An alarm is an excursion of the accumulated evidence s (a run of s > 0) whose peak passes h,
so h is where the rate of such excursions on nominal data meets the budget. Three estimates,
the largest wins (docs/ccm_tad.md, chosen on SMD and MSL together):

* h_validation — from the bundle's time-ordered validation scores with *cross-fitted*
  p-values (each half scored against the other half, drift level running): the larger of the
  excursion peaks' upper half fitted by an exponential tail with a median-based scale and
  extrapolated to the budget (a small validation period gives a stated rate, not a wall), and
  the *second* largest peak (the single worst stretch, a burst, does not set h alone);
* h_null — the budget's h on NULL_POINTS independent scores through the same running median
  (what chance alone reaches);
* h_floor — `min_alarm_points` points of the largest evidence log(α/ε): no single point
  raises an alarm alone.

h_validation is capped at `max_alarm_points` (default 10) points of the largest evidence: a
validation period with a long nominal excursion cannot push h so high that a sustained gross
fault never alarms (on MSL, h reached 388 = 84 points of the largest evidence).

The trainer calls it once per bundle; the service calls it again when a stream asks for its
own budget (`PUT /v1/streams/{id}` with `false_alarms_per_10k`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from detector.alarm import AlarmParams
from detector.offline import accumulate_series, evidence_of, excursion_peaks
from detector.pvalue import TailReference
from detector.smoothing import median_scores

NULL_POINTS = 200_000  # uniform p-values simulated for h_null
MIN_TAIL_PEAKS = 3  # fewer excursions above their median: the scale is not estimated


def cross_fitted_evidence(scores: np.ndarray, params: AlarmParams) -> np.ndarray:
    """β of each validation point against the other half of the validation period."""
    half = len(scores) // 2
    first, second = scores[:half], scores[half:]
    return np.concatenate(
        [
            evidence_of(first, TailReference.fit(second), params),
            evidence_of(second, TailReference.fit(first), params),
        ]
    )


def budget_threshold(peaks: np.ndarray, n_points: int, budget_per_point: float) -> float:
    """h at which excursions peaking above h occur `budget_per_point` times per point.

    The upper half of the peaks gets an exponential tail P(peak > h) = ½ exp(−(h − m)/θ)
    (m: median peak, θ: median excess over m / ln 2, robust to one burst). With fewer than
    MIN_TAIL_PEAKS peaks above m, the largest peak (if the budget allows none) or m.

    >>> peaks = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])  # over 1,000 points
    >>> round(budget_threshold(peaks, 1_000, 1e-4), 2)
    15.14
    >>> round(budget_threshold(np.r_[peaks, 500.0], 1_000, 1e-4), 2)  # a burst: h barely moves
    18.73
    """
    if len(peaks) == 0:
        return 0.0
    rate = len(peaks) / max(n_points, 1)
    m = float(np.median(peaks))
    upper = peaks[peaks > m] - m
    if len(upper) < MIN_TAIL_PEAKS:
        return float(peaks.max()) if rate * 0.5 > budget_per_point else m
    theta = max(float(np.median(upper)) / math.log(2.0), 1e-9)
    return m + theta * max(math.log(0.5 * rate / budget_per_point), 0.0)


@functools.lru_cache(maxsize=64)
def null_threshold(
    alpha: float,
    epsilon: float,
    delta: int,
    budget_per_point: float,
    seed: int = 0,
    median_points: int = 1,
) -> float:
    """The budget's h for what chance alone reaches: NULL_POINTS independent scores, through
    the running median of `median_points` (detector.smoothing) and their own ranks. A median
    makes neighbouring p-values alike, so chance climbs higher: at 1 per 10k, h_null is 4.0
    for the raw score and 22 for a median of 9 points."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=NULL_POINTS)
    if median_points > 1:
        g = median_scores(np.empty(0), u, median_points)
        u = (NULL_POINTS - np.searchsorted(np.sort(g), g, "left")) / NULL_POINTS  # p-values
    beta = np.log(alpha / (u + epsilon))
    peaks = excursion_peaks(accumulate_series(beta, delta))
    allowed = int(budget_per_point * NULL_POINTS)
    top = np.sort(peaks)[::-1]
    return float(top[allowed]) if allowed < len(top) else 0.0


def thresholds(
    validation_scores: np.ndarray,
    params: AlarmParams,
    false_alarms_per_10k: float,
    min_alarm_points: float,
    seed: int = 0,
    skip_peaks: int = 1,
    max_alarm_points: float = 0.0,
) -> dict[str, float]:
    """h and its three estimates for a budget, from time-ordered validation scores
    (`skip_peaks`: how many of the largest excursion peaks h_validation may pass; 1 by
    default, 0 restores the maximum rule of the first bundles; `max_alarm_points` caps
    h_validation, 0: no cap).

    >>> rng = np.random.default_rng(0)
    >>> scores = rng.gamma(2.0, 0.01, 2000)
    >>> p = AlarmParams(alpha=0.05, threshold=0.0, epsilon=0.0005)
    >>> strict, loose = (thresholds(scores, p, b, 0.0)["threshold"] for b in (0.1, 50.0))
    >>> strict > loose
    True
    """
    scores = np.asarray(validation_scores, np.float64)
    budget = false_alarms_per_10k / 1e4
    s_val = accumulate_series(cross_fitted_evidence(scores, params), params.delta)
    peaks = excursion_peaks(s_val)
    ranked = np.sort(peaks)[::-1]
    kept = float(ranked[skip_peaks]) if len(ranked) > skip_peaks else 0.0
    h_val = max(budget_threshold(peaks, len(scores), budget), kept)
    h_null = null_threshold(
        params.alpha, params.epsilon, params.delta, budget, seed, params.median_points
    )
    top = math.log(params.alpha / params.epsilon)  # the largest evidence of one point
    h_floor = min_alarm_points * top
    if max_alarm_points > 0:  # a sustained extreme excursion alarms within that many points
        h_val = min(h_val, max_alarm_points * top)
    return {
        "threshold": max(h_val, h_null, h_floor),
        "h_validation": h_val,
        "h_null": h_null,
        "h_floor": h_floor,
        "validation_peak": float(s_val.max()) if len(s_val) else 0.0,
    }
