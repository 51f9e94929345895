"""Algorithm 1 on hand-made correlation structures."""

from __future__ import annotations

import numpy as np

from model_training.clustering import cluster_channels, correlation_profiles, spectral_labels


def grouped_data(sizes: list[int], n_constant: int = 0, seed: int = 0) -> np.ndarray:
    """Each group follows its own latent signal; constant channels never move."""
    rng = np.random.default_rng(seed)
    cols = []
    for _ in sizes:
        latent = rng.normal(size=2000).cumsum()
        cols.append(latent)
    data = [
        cols[g] * rng.uniform(0.5, 2) + 0.3 * rng.normal(size=2000)
        for g, size in enumerate(sizes)
        for _ in range(size)
    ]
    data += [np.full(2000, 3.0)] * n_constant
    return np.stack(data, axis=1)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


def test_recovers_groups_with_given_m() -> None:
    truth = np.repeat([0, 1, 2], [4, 3, 5])
    labels = cluster_channels(grouped_data([4, 3, 5]), n_clusters=3)
    assert same_partition(labels, truth)


def test_constant_channels_get_their_own_cluster() -> None:
    data = grouped_data([3, 3], n_constant=2)
    phi = correlation_profiles(data)
    assert not phi[6:].any()  # constant rows are all zero
    labels = spectral_labels(phi, 3)
    assert labels[6] == labels[7] == 2
    assert same_partition(labels[:6], np.repeat([0, 1], 3))


def test_m_chosen_by_silhouette_finds_the_true_count() -> None:
    labels = cluster_channels(grouped_data([3, 4, 3, 2], seed=5))
    assert len(set(labels.tolist())) == 4


def test_deterministic() -> None:
    data = grouped_data([3, 3, 3], seed=2)
    assert np.array_equal(cluster_channels(data, seed=7), cluster_channels(data, seed=7))


def test_single_cluster() -> None:
    assert (spectral_labels(correlation_profiles(grouped_data([2, 2])), 1) == 0).all()
