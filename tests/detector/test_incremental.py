"""The incremental step path scores like the full window, through restarts and big batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.bundle import load_bundle
from detector.incremental import IncrementalScorer
from detector.online import OnlineDetector
from detector.runtime import OnnxReconstructor, OnnxStepModel
from detector.state_codec import decode_state, encode_state
from tests.conftest import synthetic_series


class CountingStep:
    """The real step graph, counting the points it embeds (to see the cache at work)."""

    def __init__(self, inner: OnnxStepModel) -> None:
        self.inner, self.embedding_dim, self.points = inner, inner.embedding_dim, 0

    def step(self, points: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.points += len(points)
        return self.inner.step(points, cache)


def test_incremental_scores_equal_full_windows(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    assert bundle.manifest["step"]["parity_max_abs_diff"] <= 1e-5
    full = OnlineDetector(bundle.calibration, OnnxReconstructor.from_bundle(bundle, "cpu"))
    step = CountingStep(OnnxStepModel.from_bundle(bundle, "cpu"))
    fast = OnlineDetector(
        bundle.calibration, full.model, IncrementalScorer(step, bundle.calibration.window_size)
    )
    data = synthetic_series(300, seed=3)
    data[200:220, :3] += 2.0
    ts = np.arange(300.0)
    want = full.step(full.new_state("s"), data, ts)
    state = fast.new_state("s")
    scores, rng, lo = [], np.random.default_rng(0), 0
    while lo < 300:
        n = int(rng.choice([1, 1, 2, 3, 40]))  # 40 > max_rounds: the full graph takes over
        if lo == 150:
            state = decode_state(encode_state(state))  # a restart: the cache is rebuilt
        scores.append(fast.step(state, data[lo : lo + n], ts[lo : lo + n]).score)
        lo += n
    np.testing.assert_allclose(np.concatenate(scores), want.score, rtol=1e-5, atol=1e-7)
    assert step.points < 300 * 3  # far fewer embeddings than 24 per point


def test_export_refuses_a_step_graph_that_disagrees() -> None:
    torch = pytest.importorskip("torch")
    from model_training.export import ExportError, check_step_parity, onnx_bytes, step_onnx_bytes
    from model_training.model import CCMTAD, ModelConfig

    model = CCMTAD(ModelConfig(3, [0, 0, 1], d_model=8, expansion=1)).eval()
    full, step = onnx_bytes(model), step_onnx_bytes(model)
    assert check_step_parity(model, full, step) <= 1e-5
    with torch.no_grad():
        model.temporal1.weight += 0.01
    with pytest.raises(ExportError):
        check_step_parity(model, onnx_bytes(model), step)
