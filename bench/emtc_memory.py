"""Clustering memory: the service's up-front estimate next to the measured peak, shape by shape,
for EMTC and for the MiniRocket peer.

    python bench/emtc_memory.py

Each shape trains one epoch in a fresh process (one torch thread, as a job runs) on random
data; the peak is that process's maximum resident set (ru_maxrss). The estimate
(`model_training.emtc.memory.peak_bytes`) must stay above the measured peak, or a job the
service accepted could hit TAD_CLUSTERING_MAX_MEMORY_MB and fail instead of being refused.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_training.emtc.config import EMTCConfig  # noqa: E402
from model_training.emtc.memory import minirocket_peak_bytes, peak_bytes  # noqa: E402

SHAPES: list[tuple[int, int, int, dict[str, Any]]] = [
    (100, 128, 3, {}),
    (40, 512, 1, {}),
    (64, 1024, 1, {}),
    (200, 256, 8, {}),
    (64, 256, 4, {"hidden": 128, "depth": 5, "n_views": 3}),
    (32, 1500, 2, {"batch_size": 16}),
    (300, 500, 4, {"use_ivm": False, "batch_size": 128}),
    (15, 2500, 4, {"batch_size": 8}),
]


MINIROCKET_SHAPES = [(138, 206, 3), (1000, 500, 3), (200, 2000, 16)]


def _measure_minirocket(n: int, t: int, d: int, out: Any) -> None:
    import resource

    import numpy as np

    from model_training.emtc.minirocket import minirocket_kmeans

    x = np.random.default_rng(0).normal(size=(n, t, d)).astype(np.float32)
    minirocket_kmeans(x, 4)
    out.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def _measure(n: int, t: int, d: int, opts: dict[str, Any], out: Any) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import resource

    import numpy as np
    import torch

    from model_training.emtc.train import fit_predict

    torch.set_num_threads(1)
    x = np.random.default_rng(0).normal(size=(n, t, d)).astype(np.float32)
    fit_predict(x, 3, EMTCConfig(**{"epochs": 1, **opts}))
    out.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def main() -> None:
    ctx = multiprocessing.get_context("spawn")
    print("| N | T | D | options | estimate MB | measured peak MB | estimate / peak |")
    print("|---|---|---|---|---|---|---|")
    worst = float("inf")
    for n, t, d, opts in SHAPES:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_measure, args=(n, t, d, opts, send))
        proc.start()
        peak = recv.recv()
        proc.join()
        est = peak_bytes(n, t, d, EMTCConfig(**opts))
        worst = min(worst, est / peak)
        shown = ", ".join(f"{k}={v}" for k, v in opts.items()) or "defaults"
        print(f"| {n} | {t} | {d} | {shown} | {est >> 20} | {peak >> 20} | {est / peak:.2f} |")
        sys.stdout.flush()
    for n, t, d in MINIROCKET_SHAPES:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_measure_minirocket, args=(n, t, d, send))
        proc.start()
        peak = recv.recv()
        proc.join()
        est = minirocket_peak_bytes(n, t, d, 10_000)
        worst = min(worst, est / peak)
        print(
            f"| {n} | {t} | {d} | MiniRocket, 10,000 features | {est >> 20} | {peak >> 20} "
            f"| {est / peak:.2f} |"
        )
        sys.stdout.flush()
    print(f"\nlowest estimate / peak: {worst:.2f} (must be >= 1)")


if __name__ == "__main__":
    main()
