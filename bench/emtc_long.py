"""Long series (issue 15, part 3): one default EMTC fit on 15 × 2,500 × 4 with the importance
mask, next to the no-mask network, in one run.

    python bench/emtc_long.py [--n 15 --t 2500 --d 4 --epochs 40]

Each fit runs in a fresh process on one torch thread (as a clustering job does), on random-walk
series with a level shift in a third of them (k = 2); prints seconds, peak resident memory
(ru_maxrss), the service's up-front estimate, and the mask / no-mask time ratio (target ≤ 3).
The ACC of random data means nothing and is not printed.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_training.emtc.config import IVM_KEY_STEPS, EMTCConfig  # noqa: E402
from model_training.emtc.memory import peak_bytes  # noqa: E402


def _fit(n: int, t: int, d: int, opts: dict[str, Any], out: Any) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import resource

    import numpy as np
    import torch

    from model_training.emtc.train import fit_predict

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(n, t, d)), axis=1).astype(np.float32)
    x[: n // 3, t // 2 :] += 10.0
    t0 = time.perf_counter()
    fit_predict(x, 2, EMTCConfig(**opts))
    out.send((time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


def main(
    n: Annotated[int, typer.Option(help="series")] = 15,
    t: Annotated[int, typer.Option(help="steps per series")] = 2500,
    d: Annotated[int, typer.Option(help="variables")] = 4,
    epochs: Annotated[int, typer.Option(help="epochs, all trained (no stopping rule)")] = 40,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    rows = []
    for name, opts in (("no mask (use_ivm=False)", {"use_ivm": False}), ("EMTC (mask)", {})):
        opts = {"epochs": epochs, "stop_patience": 0, **opts}  # a fixed count: a timing
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_fit, args=(n, t, d, opts, send))
        proc.start()
        seconds, peak = recv.recv()
        proc.join()
        rows.append((name, seconds, peak, peak_bytes(n, t, d, EMTCConfig(**opts))))
    typer.echo(f"N = {n}, T = {t}, D = {d}, {epochs} epochs, IVM keys ≤ {IVM_KEY_STEPS}")
    typer.echo("| network | fit s | peak MB | estimate MB |")
    typer.echo("|---|---|---|---|")
    for name, seconds, peak, est in rows:
        typer.echo(f"| {name} | {seconds:.1f} | {peak / 1e6:.0f} | {est / 1e6:.0f} |")
    ratio = rows[1][1] / rows[0][1]
    typer.echo(
        f"mask / no-mask time: {ratio:.2f} (target ≤ 3: {'met' if ratio <= 3 else 'missed'})"
    )


if __name__ == "__main__":
    typer.run(main)
