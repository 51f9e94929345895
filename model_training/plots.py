"""PNG of one evaluated entity: score, accumulated evidence with h, alarms and labels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from model_training.metrics import segments  # noqa: E402

if TYPE_CHECKING:
    from model_training.evaluate import EntityRun


def _shade(ax: plt.Axes, mask: np.ndarray, color: str, label: str) -> None:
    for i, (a, b) in enumerate(segments(mask)):
        ax.axvspan(a, b, color=color, alpha=0.25, lw=0, label=label if i == 0 else None)


def plot_run(run: EntityRun, path: Path) -> Path:
    """Three stacked panels sharing the time axis; labels red, label-free alarms blue."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(3, 1, figsize=(14, 7), sharex=True)
    t = np.arange(len(run.score))
    axes[0].plot(t, run.score, lw=0.5, color="black")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("score")
    axes[1].plot(t, run.evidence, lw=0.4, color="gray")
    axes[1].set_ylabel("evidence β")
    axes[2].plot(t, run.accumulated, lw=0.6, color="black")
    axes[2].axhline(run.threshold, color="orange", lw=1, label=f"h = {run.threshold:.2f}")
    axes[2].set_ylabel("accumulated s")
    for ax in axes:
        _shade(ax, run.labels.astype(bool), "red", "labelled anomaly")
        _shade(ax, run.predictions.astype(bool), "blue", "alarm [onset, offset]")
    axes[2].legend(loc="upper right", fontsize=8)
    axes[2].set_xlabel("test point")
    fig.suptitle(run.name)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
