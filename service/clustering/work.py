"""One clustering job's work: decode its input, train EMTC, build the result the API returns.

Runs in a job's own process (`service.clustering.process`). torch (through
`model_training.emtc.train`) is imported there, never by the service.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np


class Stopped(Exception):
    """The trainer stopped because `should_stop()` said so (cancel, timeout, shutdown)."""


def encode_input(x: np.ndarray, labels: np.ndarray | None) -> bytes:
    """A job's input as .npz bytes: X [N, T, D] float32 and, if given, y [N] str."""
    buf = io.BytesIO()
    arrays = {"X": x} if labels is None else {"X": x, "y": labels.astype(str)}
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def decode_input(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        x = np.asarray(npz["X"], dtype=np.float32)
        y = np.asarray(npz["y"]) if "y" in npz.files else None
    return x, y


def load_trainer(threads: int) -> Any:
    """The EMTC trainer module, with torch limited to `threads` intra-op threads."""
    import torch

    from model_training.emtc import train as emtc_train

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return emtc_train


def run(
    data: bytes,
    meta: dict[str, Any],
    threads: int,
    progress: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool],
) -> dict[str, Any]:
    """Train on the job's input and return its `ClusteringResultOut` dict."""
    emtc = load_trainer(threads)
    from model_training.emtc.metrics import score_clustering

    x, y = decode_input(data)
    k = int(meta["n_clusters"])
    cfg = emtc.EMTCConfig(**meta.get("trainer", {}), device="cpu")
    t0 = time.perf_counter()
    try:
        res = emtc.fit_predict(x, k, cfg, progress=progress, should_stop=should_stop)
    except emtc.ClusteringCancelled as exc:
        raise Stopped(str(exc)) from exc
    labels = [int(v) for v in res.labels]
    refs = meta.get("episodes") or None
    return {
        "labels": labels,
        "sizes": np.bincount(res.labels, minlength=k).astype(int).tolist(),
        "silhouette": res.silhouette,
        "metrics": None if y is None else score_clustering(y, res.labels),
        "episodes": None
        if refs is None
        else [{**r, "cluster": c} for r, c in zip(refs, labels, strict=True)],
        "epochs": len(res.history),
        "seconds": round(time.perf_counter() - t0, 3),
        "config": res.config,
    }
