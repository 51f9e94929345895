"""The hybrid score's residual: a point's value must not depend on the batch it came in."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.score import _residual


def _basis(rng: np.random.Generator, k: int, c: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(c, k)))
    return np.ascontiguousarray(q.T)  # [k, C] orthonormal rows


@settings(max_examples=60, deadline=None)
@given(
    lo=st.integers(0, 199),
    length=st.integers(1, 200),
    k=st.integers(0, 30),
    c=st.sampled_from([4, 5, 38]),
)
def test_residual_of_a_row_does_not_depend_on_its_batch(
    lo: int, length: int, k: int, c: int
) -> None:
    """Whatever rows share its call: a matmul of the whole block, which BLAS blocks by the
    number of rows, fails this. (Row-by-row BLAS passes it here but not in the service: its
    kernels sum in an order that depends on where a row lies in memory.)"""
    rng = np.random.default_rng(k)
    k = min(k, c)
    x = rng.normal(size=(200, c))
    basis, center = _basis(rng, k, c), rng.normal(size=c)
    whole = _residual(x, center, basis)
    alone = _residual(x[lo : lo + length], center, basis)
    assert np.array_equal(alone, whole[lo : lo + length])


def test_residual_is_orthogonal_to_the_basis() -> None:
    rng = np.random.default_rng(0)
    basis = _basis(rng, 5, 12)
    r = _residual(rng.normal(size=(7, 12)), np.zeros(12), basis)
    assert np.abs(r @ basis.T).max() < 1e-12
