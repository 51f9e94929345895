"""fit_predict: end-to-end on synthetic clusters, input rejection, cancellation, determinism."""

from typing import Any

import numpy as np
import pytest
import torch

from model_training.emtc.metrics import clustering_acc
from model_training.emtc.train import ClusteringCancelled, EMTCConfig, fit_predict

SMALL: dict[str, Any] = dict(hidden=16, ivm_hidden=4, d_k=4, depth=2)


def _three_clusters(n_per: int = 15, t: int = 32, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    tt = np.linspace(0, 1, t)
    protos = [np.sin(2 * np.pi * 1 * tt), np.sign(np.sin(2 * np.pi * 3 * tt)), 2 * tt - 1]
    xs, ys = [], []
    for c, proto in enumerate(protos):
        for _ in range(n_per):
            base = np.stack([proto * (1 + 0.3 * j) for j in range(d)], axis=1)
            xs.append(base + 0.1 * rng.normal(size=(t, d)))
            ys.append(c)
    return np.asarray(xs, dtype=np.float32), np.asarray(ys)


def test_synthetic_three_clusters_end_to_end() -> None:
    x, y = _three_clusters()
    seen: list[dict] = []
    cfg = EMTCConfig(epochs=20, seed=0, stop_patience=0, **SMALL)  # no stopping rule: all 20
    res = fit_predict(x, 3, cfg, progress=seen.append)
    assert clustering_acc(y, res.labels) >= 0.9
    assert [r["epoch"] for r in seen] == list(range(1, 21))
    assert {"epoch", "epochs", "loss", "contra", "intra", "inter"} <= set(seen[0])
    assert res.representation.shape == (45, 16) and len(res.history) == 20
    assert res.silhouette is not None and res.config["epochs"] == 20


def test_training_stops_once_pseudo_labels_settle() -> None:
    """The label-free rule: well-separated data converge long before the 200-epoch budget; the
    epochs kept are those before the stable streak completed, and the clusters are right."""
    x, y = _three_clusters()
    seen: list[dict] = []
    cfg = EMTCConfig(seed=0, stop_patience=3, min_epochs=10, **SMALL)
    res = fit_predict(x, 3, cfg, progress=seen.append)
    assert cfg.epochs == 200 and 9 <= len(res.history) < 200
    assert seen == res.history and all(r["epochs"] == 200 for r in seen)
    assert seen[0]["label_change"] == 1.0  # nothing to compare the first labels with
    assert all(r["label_change"] <= cfg.stop_label_change for r in seen[-2:])
    assert clustering_acc(y, res.labels) >= 0.9


def test_seeded_and_leaves_global_rng_alone() -> None:
    x, _ = _three_clusters(n_per=5)
    state = torch.get_rng_state()
    a = fit_predict(x, 3, EMTCConfig(epochs=2, seed=3, **SMALL))
    assert torch.equal(state, torch.get_rng_state())
    b = fit_predict(x, 3, EMTCConfig(epochs=2, seed=3, **SMALL))
    np.testing.assert_allclose(a.representation, b.representation, rtol=1e-5, atol=1e-6)


def test_should_stop_cancels() -> None:
    x, _ = _three_clusters(n_per=5)
    with pytest.raises(ClusteringCancelled):
        fit_predict(x, 3, EMTCConfig(epochs=5, **SMALL), should_stop=lambda: True)


@pytest.mark.parametrize(
    "x,k",
    [
        (np.zeros((10, 8)), 2),  # not 3-D
        (np.zeros((10, 1, 2)), 2),  # T < 2
        (np.full((10, 8, 2), np.nan), 2),  # NaN
        (np.zeros((10, 8, 2)), 11),  # k > N
        (np.zeros((10, 8, 2)), 1),  # k < 2
        (np.zeros((10, 8, 2)), 2.5),  # k not int
        (np.array([[["a", "b"]] * 8] * 4), 2),  # not numeric
        ([[[0.0]]], 2),  # not an array
    ],
)
def test_rejects_malformed_inputs(x: np.ndarray, k: int) -> None:
    with pytest.raises(ValueError):
        fit_predict(x, k, EMTCConfig(epochs=1, **SMALL))


@pytest.mark.parametrize(
    "bad", [dict(epsilon=1.5), dict(epochs=0), dict(tau=0.0), dict(alpha=-1.0), dict(n_views=0)]
)
def test_rejects_bad_config(bad: dict) -> None:
    with pytest.raises(ValueError):
        fit_predict(np.zeros((6, 8, 2)), 2, EMTCConfig(**{**SMALL, **bad}))
