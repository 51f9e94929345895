"""The label-free check a new version must pass before it replaces the running one.

Both versions replay the most recent nominal history the job holds back from training (its
last `holdout_fraction`, recorded alarms already left out), each from a state warmed on the
window before it, through the same detector core the service scores with. A version's figure is
its false alarms on that history: alarms opened per 10,000 points, and the share of points in
alarm. The new version is promoted when it is within the budget the request names, or no worse
than the running version on both figures (a stream whose nominal history alarms even the running
model is no reason to keep a stale model). Otherwise the running version stays and the job says
why. Runs in the job's process; needs no torch.

>>> decide({"per_10k": 2.0, "in_alarm": 0.0}, None, 5.0)
(True, 'new version: 2.00 false alarms per 10k nominal points, within the budget of 5.00')
>>> decide({"per_10k": 9.0, "in_alarm": 0.2}, {"per_10k": 1.0, "in_alarm": 0.0}, 5.0)[0]
False
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MAX_IN_ALARM = 0.1  # the share of nominal history a promoted version may spend in alarm


def false_alarms(bundle_dir: Path, warm: np.ndarray, check: np.ndarray) -> dict[str, Any]:
    """Replay `check` ([n, C] nominal points) through the bundle after `warm` (the points
    before it): alarms opened, points in alarm, per 10k points."""
    from detector.bundle import load_bundle
    from detector.runtime import online_detector

    det = online_detector(load_bundle(bundle_dir), "cpu")
    state = det.new_state("promotion-check")
    t = np.arange(len(warm) + len(check), dtype=np.float64)
    if len(warm):
        det.step(state, warm, t[: len(warm)])
    out = det.step(state, check, t[len(warm) :])
    opened = sum(e.kind == "opened" for e in out.events)
    n = len(check)
    return {
        "points": n,
        "alarms_opened": opened,
        "per_10k": round(opened * 10_000 / n, 3),
        "in_alarm": round(float(np.mean(out.alarm)), 4),
    }


def decide(
    new: dict[str, Any], running: dict[str, Any] | None, budget_per_10k: float
) -> tuple[bool, str]:
    """(promote?, why), from the two versions' figures on the same history."""
    fig = f"{new['per_10k']:.2f} false alarms per 10k nominal points"
    if new["per_10k"] <= budget_per_10k and new["in_alarm"] <= MAX_IN_ALARM:
        return True, f"new version: {fig}, within the budget of {budget_per_10k:.2f}"
    if running is not None and (
        new["per_10k"] <= running["per_10k"] and new["in_alarm"] <= running["in_alarm"]
    ):
        return True, (
            f"new version: {fig}, over the budget of {budget_per_10k:.2f} but no worse than "
            f"the running version ({running['per_10k']:.2f})"
        )
    against = (
        f"; the running version: {running['per_10k']:.2f}, {running['in_alarm']:.1%} in alarm"
        if running is not None
        else ""
    )
    return False, (
        f"new version: {fig} and {new['in_alarm']:.1%} of them in alarm, over the budget of "
        f"{budget_per_10k:.2f} (and at most {MAX_IN_ALARM:.0%} in alarm){against}: the running "
        "version is kept"
    )


def check(
    new_dir: Path,
    running_dir: Path | None,
    values: np.ndarray,
    holdout: int,
    budget_per_10k: float,
    window: int = 24,
) -> dict[str, Any]:
    """Both versions on the last `holdout` rows of `values`; the decision and its figures."""
    warm, held = values[-holdout - window : -holdout], values[-holdout:]
    new = false_alarms(new_dir, warm, held)
    running = None
    if running_dir is not None and running_dir.is_dir():
        running = false_alarms(running_dir, warm, held)
    promoted, why = decide(new, running, budget_per_10k)
    return {
        "promoted": promoted,
        "reason": why,
        "budget_per_10k": budget_per_10k,
        "new": new,
        "running": running,
    }
