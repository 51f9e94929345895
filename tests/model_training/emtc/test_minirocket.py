"""Our numpy MiniRocket against aeon's: with aeon's fitted parameters, the same features
(reference made by `bench/minirocket_reference.py`); our own fit follows the published rules;
and the clustering peer separates groups a shape tells apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_training.emtc import minirocket as mr
from model_training.emtc.metrics import score_clustering

REFERENCE = Path(__file__).with_name("data") / "minirocket_reference.npz"


def with_aeons_parameters(ref: dict[str, np.ndarray], prefix: str = "") -> mr.MiniRocket:
    m = mr.MiniRocket()
    m.channels_per_combination = ref[prefix + "channels_per_combination"]
    m.channel_indices = ref[prefix + "channel_indices"]
    m.dilations = ref[prefix + "dilations"]
    m.features_per_dilation = ref[prefix + "features_per_dilation"]
    m.biases = ref[prefix + "biases"]
    return m


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    with np.load(REFERENCE, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.mark.parametrize(("prefix", "channels"), [("", slice(None)), ("uni_", slice(0, 1))])
def test_the_transform_gives_aeons_features(
    ref: dict[str, np.ndarray], prefix: str, channels: slice
) -> None:
    x = ref["X"][:, channels].transpose(0, 2, 1)  # aeon's [N, D, T] → ours [N, T, D]
    ours = with_aeons_parameters(ref, prefix).transform(x)
    theirs = ref["features" if not prefix else "features_uni"]
    assert ours.shape == theirs.shape == (6, 840)
    # PPVs are counts over T: a float32 rounding difference can flip a value sitting exactly
    # on a bias (one step of 1/T), nothing more
    assert np.mean(ours == theirs) > 0.995
    assert np.abs(ours - theirs).max() <= 1.0 / 30


def test_our_fit_follows_the_published_rules(ref: dict[str, np.ndarray]) -> None:
    x = ref["X"].transpose(0, 2, 1)
    m = mr.MiniRocket(n_features=840, seed=1).fit(x)
    np.testing.assert_array_equal(m.dilations, ref["dilations"])  # deterministic given T, F
    np.testing.assert_array_equal(m.features_per_dilation, ref["features_per_dilation"])
    combos = 84 * len(m.dilations)
    assert len(m.channels_per_combination) == combos
    assert m.channels_per_combination.min() >= 1 and m.channels_per_combination.max() <= 3
    assert len(m.channel_indices) == m.channels_per_combination.sum()
    assert len(m.biases) == 840 and np.isfinite(m.biases).all()
    again = mr.MiniRocket(n_features=840, seed=1).fit(x)
    np.testing.assert_array_equal(again.biases, m.biases)  # seeded: reproducible


def test_the_peer_clusters_shapes() -> None:
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 64)
    y = np.repeat(np.arange(3), 8)
    x = np.stack(
        [
            np.stack(
                [np.sin(2 * np.pi * (1 + 3 * c) * t), np.sign(np.sin(2 * np.pi * (c + 1) * t))], 1
            )
            + 0.1 * rng.standard_normal((64, 2))
            for c in y
        ]
    )
    labels, feats = mr.minirocket_kmeans(x, 3, seed=0, n_features=840)
    assert feats.shape == (24, 840)
    assert score_clustering(y.astype(str), labels)["acc"] == 1.0


def test_short_series_are_refused_with_the_length() -> None:
    with pytest.raises(ValueError, match="T >= 9"):
        mr.MiniRocket().fit(np.zeros((4, 8, 1), np.float32))
