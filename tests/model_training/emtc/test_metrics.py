"""Metric functions on hand-made label sets."""

import numpy as np
import pytest

from model_training.emtc.metrics import clustering_acc, matched_macro_f1, score_clustering


def test_acc_is_one_under_any_permutation_of_cluster_ids() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([2, 2, 0, 0, 1, 1, 1])  # same partition, renamed
    assert clustering_acc(y, pred) == 1.0
    assert matched_macro_f1(y, pred) == 1.0
    s = score_clustering(y, pred)
    assert s["nmi"] == pytest.approx(1.0) and s["ari"] == pytest.approx(1.0)


def test_acc_and_f1_on_hand_computed_example() -> None:
    y = np.array(["a", "a", "a", "b", "b", "b"])
    pred = np.array([5, 5, 7, 7, 7, 7])  # best map 5→a, 7→b: 5 of 6 right
    assert clustering_acc(y, pred) == pytest.approx(5 / 6)
    # class a: P=1, R=2/3 → F1=0.8; class b: P=3/4, R=1 → F1=6/7
    assert matched_macro_f1(y, pred) == pytest.approx((0.8 + 6 / 7) / 2)


def test_more_clusters_than_classes_counts_unmatched_as_errors() -> None:
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 2, 2])
    assert clustering_acc(y, pred) == pytest.approx(0.75)


def test_single_cluster_for_two_balanced_classes_is_half() -> None:
    y = np.array([0, 1] * 5)
    assert clustering_acc(y, np.zeros(10, dtype=int)) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "y,p", [(np.zeros(3), np.zeros(4)), (np.zeros((2, 2)), np.zeros((2, 2))), ([], [])]
)
def test_rejects_malformed_label_arrays(y: np.ndarray, p: np.ndarray) -> None:
    with pytest.raises(ValueError):
        score_clustering(np.asarray(y), np.asarray(p))
