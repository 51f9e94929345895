"""The hybrid score's residual: a point's value must not depend on the batch it came in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.score import ChannelScore, _residual


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


def _context_score(
    n_sensors: int, n_context: int, seed: int = 0
) -> tuple[ChannelScore, np.ndarray]:
    """A PCA-kind score fitted on validation points whose last `n_context` channels never
    moved (flags that were off)."""
    rng = np.random.default_rng(seed)
    c = n_sensors + n_context
    val = np.c_[rng.normal(0, 0.3, (300, n_sensors)), -np.ones((300, n_context))]
    errors = rng.random((300, c)) * 0.01
    ctx = np.r_[np.zeros(n_sensors, bool), np.ones(n_context, bool)]
    return ChannelScore.fit("pca", errors, val, val.mean(axis=0), np.zeros((0, c)), ctx, ctx), val


def _score(score: ChannelScore, point: np.ndarray) -> float:
    return float(score.score(np.zeros_like(point), point)[0])


@settings(max_examples=50, deadline=None)
@given(
    n_sensors=st.integers(1, 5),
    n_context=st.integers(1, 8),
    jump=st.floats(0.0, 1e6),
    seed=st.integers(0, 1000),
)
def test_context_channels_add_at_most_their_cap(
    n_sensors: int, n_context: int, jump: float, seed: int
) -> None:
    """Issue 23: a flag never seen in training adds at most `context_cap` to a score, however
    far it moves."""
    score, val = _context_score(n_sensors, n_context, seed)
    point = val[:1].copy()
    quiet = _score(score, point)
    point[0, n_sensors:] += jump
    moved = _score(score, point)
    assert 0 < score.context_cap < np.inf
    assert quiet <= moved <= quiet + score.context_cap * (1 + 1e-9) + 1e-12


def test_a_sensor_excursion_is_not_bounded() -> None:
    score, val = _context_score(2, 6)
    point = val[:1].copy()
    quiet = _score(score, point)
    point[0, 0] += 50.0
    assert _score(score, point) > quiet + 100 * score.context_cap


def test_context_survives_a_bundle_round_trip_and_a_bad_one_is_refused(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    from detector.bundle import CALIBRATION_FILE, MANIFEST, BundleError, load_bundle, write_bundle

    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle, bundle)
    c = len(json.loads((bundle / MANIFEST).read_text())["channel_names"])
    flags = np.zeros(c)
    flags[-1] = 1.0

    def rewrite(**arrays: np.ndarray) -> None:
        manifest = json.loads((bundle / MANIFEST).read_text())
        with np.load(bundle / CALIBRATION_FILE) as z:
            kept = {k: z[k] for k in z.files} | arrays
        for extra in ("model_step.onnx", "model_embed.onnx"):
            (bundle / extra).unlink(missing_ok=True)
        for key in ("files", "content_hash", "schema_version"):
            manifest.pop(key, None)
        write_bundle(bundle, manifest, kept, (bundle / "model.onnx").read_bytes())

    rewrite(context=flags, context_cap=np.array([0.5]))
    score = load_bundle(bundle).calibration.channel_score
    assert score is not None and score.context is not None
    assert score.context.tolist() == flags.astype(bool).tolist() and score.context_cap == 0.5
    rewrite(context=np.ones(c), context_cap=np.array([0.5]))
    with pytest.raises(BundleError, match="some but not all channels"):
        load_bundle(bundle)
    rewrite(context=flags * 2, context_cap=np.array([0.5]))
    with pytest.raises(BundleError, match="0 or 1"):
        load_bundle(bundle)


def test_a_context_score_does_not_depend_on_its_batch() -> None:
    """The service promises the same bits however points are batched (tests/service/
    test_properties.py); the context bound is a per-row reduction and keeps that promise."""
    score, val = _context_score(3, 7, seed=5)
    rng = np.random.default_rng(1)
    points = val[:64] + rng.normal(0, 2.0, (64, 10)) * (rng.random((64, 10)) < 0.3)
    errors = rng.random((64, 10)) * 0.1
    whole = score.score(errors, points)
    alone = np.concatenate([score.score(errors[i : i + 1], points[i : i + 1]) for i in range(64)])
    assert whole.tobytes() == alone.tobytes()
