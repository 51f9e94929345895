"""Probe a bundle's detector with real windows before it serves: refuse one that cannot score.

A bundle can pass every hash and shape check and still output NaN (a corrupted weight, an
exporter bug). Served, every point would get no score and the streams would be blind, so the
registry runs each new detector on a few streams first — zeros, the clip extremes, and
calibration-like values — through the same step the service runs, full and step graphs alike,
and refuses the bundle with a reason if any score is not finite.

>>> import numpy as np
>>> from detector.alarm import AlarmParams
>>> from detector.calibration import Calibration
>>> from detector.online import OnlineDetector
>>> class Broken:
...     def reconstruct(self, w): return np.full((len(w), w.shape[-1]), np.nan, np.float32)
>>> cal = Calibration(("a",), np.zeros(1), np.ones(1), 4.0, np.linspace(0, 1, 50),
...                   AlarmParams(0.05, 3.0), window_size=4)
>>> probe_failure(OnlineDetector(cal, Broken()))
'non-finite scores on probe stream zeros (8 of 8 scored points)'
"""

from __future__ import annotations

import numpy as np

from detector.online import OnlineDetector

PROBE_POINTS = 8  # scored points per probe stream, after the warm-up


def probe_streams(det: OnlineDetector, seed: int = 0) -> dict[str, np.ndarray]:
    """Raw-valued probe streams [L − 1 + PROBE_POINTS, C] named by what they hold."""
    cal = det.calibration
    n, c = cal.window_size - 1 + PROBE_POINTS, cal.n_channels
    rng = np.random.default_rng(seed)
    scaled = {
        "zeros": np.zeros((n, c)),
        "upper clip": np.full((n, c), cal.clip),
        "lower clip": np.full((n, c), -cal.clip),
        "nominal-like": rng.uniform(-1.0, 1.0, (n, c)),
    }
    # raw = inverse of Calibration.scale: (x + 1) / 2 · range + min
    return {k: (v + 1.0) / 2.0 * cal.scale_range + cal.scale_min for k, v in scaled.items()}


def probe_failure(det: OnlineDetector) -> str | None:
    """None when every probe point scores finitely, else the reason (the first failure)."""
    for name, values in probe_streams(det).items():
        state = det.new_state(f"probe {name}")
        res = det.step(state, values, np.arange(len(values), dtype=np.float64))
        scored = ~res.warmup
        bad = scored & ~np.isfinite(res.score)
        if bad.any():
            return (
                f"non-finite scores on probe stream {name} "
                f"({int(bad.sum())} of {int(scored.sum())} scored points)"
            )
    return None
