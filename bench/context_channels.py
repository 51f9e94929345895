"""Flags and constant channels as sensors or as bounded context, without a model (minutes).

    python bench/context_channels.py --smd ../shared/data/SMD --msl ../shared/data/MSL

The design check behind `detector.score`'s context channels. For every entity of every set, the
model-free kinds of the project's own score (`ChannelScore.fit`: the PCA residual and the
distance from the training mean, fitted on the first 80 % of the nominal data and normalised
on the last 20 % as the trainer does) are scored on the test period three ways:

* ``as sensors`` — every channel scored alike (the design before);
* ``context`` — the default: channels constant in training or with ≤ 3 levels are context,
  the nominal subspace is fitted on the sensor channels, the context part is bounded by the
  median validation score of the sensor part;
* ``sensors only`` — the context channels dropped from the score altogether.

Prints mean per-entity best F1 (an oracle threshold: a ranking figure, not an operating point)
and mean VUS-PR per set and row. Test labels only measure; nothing here is chosen per entity.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.score import ChannelScore, ScoreKind  # noqa: E402
from model_training.channel_types import channel_types  # noqa: E402
from model_training.cli import load_entities  # noqa: E402
from model_training.metrics import best_f1, find_period, vus_pr  # noqa: E402
from model_training.train import nominal_subspace  # noqa: E402

VAL_FRACTION, PCA_VARIANCE = 0.2, 0.95
ROWS = ("as sensors", "context", "sensors only")


def entity_scores(train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    """Test scores [T] per (kind, row) for one entity."""
    n_fit = int(len(train) * (1 - VAL_FRACTION))
    lo, hi = train[:n_fit].min(axis=0), train[:n_fit].max(axis=0)
    rng = np.where(hi > lo, hi - lo, 1.0)
    x, t = (train - lo) / rng * 2 - 1, (test - lo) / rng * 2 - 1  # unclipped, as the score
    types = channel_types(train[:n_fit], [str(j) for j in range(train.shape[1])])
    ctx, const = types.context_mask, types.constant_mask
    out: dict[str, np.ndarray] = {}
    val, zeros_v, zeros_t = x[n_fit:], np.zeros_like(x[n_fit:]), np.zeros_like(t)
    kinds: tuple[ScoreKind, ...] = ("pca", "distance")
    for kind in kinds:
        c0, b0 = nominal_subspace(x[:n_fit], PCA_VARIANCE)
        plain = ChannelScore.fit(kind, zeros_v, val, c0, b0, const)
        out[f"{kind}: as sensors"] = plain.score(zeros_t, t)
        if ctx is None:
            out[f"{kind}: context"] = out[f"{kind}: sensors only"] = out[f"{kind}: as sensors"]
            continue
        c1, b1 = nominal_subspace(x[:n_fit], PCA_VARIANCE, ~ctx)
        with_ctx = ChannelScore.fit(kind, zeros_v, val, c1, b1, const, ctx)
        out[f"{kind}: context"] = with_ctx.score(zeros_t, t)
        sensors = with_ctx.contributions(zeros_t, t)[:, ~ctx]
        out[f"{kind}: sensors only"] = sensors.mean(axis=1)
    return out


def main(
    smd: Annotated[Path | None, typer.Option(help="SMD root")] = Path("../shared/data/SMD"),
    msl: Annotated[Path | None, typer.Option(help="MSL root")] = Path("../shared/data/MSL"),
) -> None:
    from tqdm import tqdm

    for kind, root in (("smd", smd), ("msl", msl)):
        if root is None:
            continue
        figures: dict[str, list[tuple[float, float]]] = {}
        for ent in tqdm(load_entities(kind, root, None), desc=kind):
            labels = np.asarray(ent.test_labels)
            if not labels.any():
                continue
            test = np.asarray(ent.test, np.float64)
            period = find_period(test[:, 0])
            for name, s in entity_scores(np.asarray(ent.train, np.float64), test).items():
                s = np.nan_to_num(s, nan=0.0, posinf=np.finfo(np.float64).max)
                f1 = best_f1(labels, s).f1
                figures.setdefault(name, []).append((f1, vus_pr(labels, s, sliding_window=period)))
        typer.echo(f"\n{kind.upper()} ({len(next(iter(figures.values())))} entities)")
        typer.echo("| score | mean best F1 (oracle) | mean VUS-PR |\n|---|---|---|")
        for name, rows in figures.items():
            a = np.asarray(rows)
            typer.echo(f"| {name} | {a[:, 0].mean():.3f} | {a[:, 1].mean():.3f} |")


if __name__ == "__main__":
    typer.run(main)
