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
    """Cluster the job's input with its method; return its `ClusteringResultOut` dict (a
    training job, `meta["task"] == "training"`, trains a model instead: service.training)."""
    if meta.get("task") == "training":
        from service.training import work as training

        return training.run(data, meta, threads, progress)
    from model_training.emtc.metrics import score_clustering

    x, y = decode_input(data)
    k = int(meta["n_clusters"])
    t0 = time.perf_counter()
    if meta.get("method", "emtc") == "minirocket":
        labels_np, silhouette, epochs, config = _minirocket(x, k, meta, progress)
    else:
        labels_np, silhouette, epochs, config = _emtc(x, k, meta, threads, progress, should_stop)
    labels = [int(v) for v in labels_np]
    refs = meta.get("episodes") or None
    return {
        "labels": labels,
        "sizes": np.bincount(labels_np, minlength=k).astype(int).tolist(),
        "silhouette": silhouette,
        "metrics": None if y is None else score_clustering(y, labels_np),
        "episodes": None
        if refs is None
        else [{**r, "cluster": c} for r, c in zip(refs, labels, strict=True)],
        "epochs": epochs,
        "seconds": round(time.perf_counter() - t0, 3),
        "config": config,
    }


Outcome = tuple[np.ndarray, float | None, int, dict[str, Any]]  # labels, silhouette, epochs, cfg


def _emtc(
    x: np.ndarray,
    k: int,
    meta: dict[str, Any],
    threads: int,
    progress: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool],
) -> Outcome:
    emtc = load_trainer(threads)
    cfg = emtc.EMTCConfig(**meta.get("trainer", {}), device="cpu")
    try:
        res = emtc.fit_predict(x, k, cfg, progress=progress, should_stop=should_stop)
    except emtc.ClusteringCancelled as exc:
        raise Stopped(str(exc)) from exc
    return res.labels, res.silhouette, len(res.history), {"method": "emtc", **res.config}


def _minirocket(
    x: np.ndarray, k: int, meta: dict[str, Any], progress: Callable[[dict[str, Any]], None]
) -> Outcome:
    from sklearn.metrics import silhouette_score

    from model_training.emtc.minirocket import DEFAULT_FEATURES, minirocket_kmeans

    seed = int(meta.get("trainer", {}).get("seed", 0))
    n_features = int(meta.get("n_features") or DEFAULT_FEATURES)
    labels, feats = minirocket_kmeans(x, k, seed=seed, n_features=n_features)
    progress({"epoch": 1, "epochs": 1, "loss": None})
    sil = None
    if 2 <= len(np.unique(labels)) < len(labels):
        sil = float(silhouette_score(feats, labels))
    config = {"method": "minirocket", "n_features": n_features, "seed": seed, "scaler": "standard"}
    return labels, sil, 0, config
