"""The incremental step path scores like the full window, through restarts and big batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector.bundle import Bundle, load_bundle
from detector.incremental import IncrementalScorer
from detector.online import OnlineDetector
from detector.runtime import OnnxEmbedModel, OnnxReconstructor, OnnxStepModel
from detector.state_codec import decode_state, encode_state
from tests.conftest import synthetic_series


class CountingEmbed:
    """The real embedding graph, counting the points it embeds (to see the cache at work)."""

    def __init__(self, inner: OnnxEmbedModel) -> None:
        self.inner, self.points = inner, 0

    def embed(self, points: np.ndarray) -> np.ndarray:
        self.points += len(points)
        return self.inner.embed(points)


def scorer(bundle: Bundle) -> tuple[IncrementalScorer, CountingEmbed]:
    cal = bundle.calibration
    embed = CountingEmbed(OnnxEmbedModel.from_bundle(bundle, "cpu"))
    step = OnnxStepModel.from_bundle(bundle, "cpu")
    return IncrementalScorer(step, embed, cal.window_size, cal.scale), embed


def test_incremental_scores_equal_full_windows(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    assert bundle.manifest["step"]["parity_max_abs_diff"] <= 1e-5
    full = OnlineDetector(bundle.calibration, OnnxReconstructor.from_bundle(bundle, "cpu"))
    inc, embed = scorer(bundle)
    fast = OnlineDetector(bundle.calibration, full.model, inc)
    data = synthetic_series(300, seed=3)
    data[200:220, :3] += 2.0
    ts = np.arange(300.0)
    want = full.step(full.new_state("s"), data, ts)
    state = fast.new_state("s")
    scores, rng, lo = [], np.random.default_rng(0), 0
    while lo < 300:
        n = int(rng.choice([1, 1, 2, 3, 40]))
        if lo == 150:
            state = decode_state(encode_state(state))  # a restart: the cache is rebuilt
        scores.append(fast.step(state, data[lo : lo + n], ts[lo : lo + n]).score)
        lo += n
    np.testing.assert_allclose(np.concatenate(scores), want.score, rtol=1e-5, atol=1e-7)
    assert embed.points < 300 + 2 * 23  # each point once, plus one rebuild after the restart


def test_rounds_across_streams_equal_full_windows(tiny_bundle: Path) -> None:
    """Many streams with different point counts per batch, through caches made stale by a
    batch the full graph scored and by a model swap."""
    bundle = load_bundle(tiny_bundle)
    cal = bundle.calibration
    full = OnlineDetector(cal, OnnxReconstructor.from_bundle(bundle, "cpu"))
    inc, _ = scorer(bundle)
    fast = OnlineDetector(cal, full.model, inc)
    other, _ = scorer(bundle)  # a reloaded model's scorer
    data = [synthetic_series(120, seed=10 + i) for i in range(6)]
    ts = np.arange(120.0)
    want = [full.step(full.new_state(f"s{i}"), d, ts).score for i, d in enumerate(data)]
    states = [fast.new_state(f"s{i}") for i in range(6)]
    got: list[list[np.ndarray]] = [[] for _ in range(6)]
    pos, rng = [0] * 6, np.random.default_rng(1)
    for b in range(80):
        if b == 40:
            fast.incremental = other
        fast_now = fast if b != 20 else OnlineDetector(cal, full.model)  # full graph only
        batch, who = [], []
        for i in range(6):
            n = 30 if b == 20 and i == 0 else int(rng.integers(0, 4))
            n = min(n, 120 - pos[i])
            batch.append((states[i], data[i][pos[i] : pos[i] + n], ts[pos[i] : pos[i] + n]))
            who.append(i)
            pos[i] += n
        for i, r in zip(who, fast_now.step_batch(batch), strict=True):
            got[i].append(r.score)
    for i in range(6):
        np.testing.assert_allclose(np.concatenate(got[i]), want[i][: pos[i]], rtol=1e-5, atol=1e-7)


def test_export_refuses_a_step_graph_that_disagrees() -> None:
    torch = pytest.importorskip("torch")
    from model_training.export import ExportError, check_step_parity, onnx_bytes, step_onnx_bytes
    from model_training.model import CCMTAD, ModelConfig

    model = CCMTAD(ModelConfig(n_channels=3, clusters=[0, 0, 1], d_model=8, expansion=1)).eval()
    full, step = onnx_bytes(model), step_onnx_bytes(model)
    assert check_step_parity(model, full, step) <= 1e-5
    with torch.no_grad():
        model.temporal1.weight += 0.01
    with pytest.raises(ExportError):
        check_step_parity(model, onnx_bytes(model), step)
