"""The model is causal, and the last-step path equals the full reconstruction's last row."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from model_training.model import CCMTAD, CausalLinear, ModelConfig, cluster_widths  # noqa: E402


@pytest.fixture(params=["layer", "batch"])
def model(request: pytest.FixtureRequest) -> CCMTAD:
    torch.manual_seed(0)
    cfg = ModelConfig(
        n_channels=7, clusters=[0, 0, 1, 1, 1, 2, 2], d_model=24, expansion=3, norm=request.param
    )
    m = CCMTAD(cfg)
    m.train()
    m(torch.randn(64, 24, 7))  # move BatchNorm running statistics off their defaults
    return m.eval()


def test_future_steps_do_not_change_earlier_outputs(model: CCMTAD) -> None:
    x = torch.randn(3, 24, 7)
    changed = x.clone()
    changed[:, 15:] = torch.randn(3, 9, 7) * 5
    with torch.no_grad():
        a, b = model.forward_all(x), model.forward_all(changed)
    assert torch.allclose(a[:, :15], b[:, :15], atol=1e-6)
    assert not torch.allclose(a[:, 15:], b[:, 15:], atol=1e-3)  # the test can fail


def test_last_step_path_equals_full_reconstruction(model: CCMTAD) -> None:
    x = torch.randn(5, 24, 7)
    with torch.no_grad():
        assert torch.allclose(model(x), model.forward_all(x)[:, -1], atol=1e-5)


def test_causal_mask_is_the_papers() -> None:
    layer = CausalLinear(4)
    expected = torch.tensor(
        [[1, 1 / 2, 1 / 3, 1 / 4], [0, 1 / 2, 1 / 3, 1 / 4], [0, 0, 1 / 3, 1 / 4], [0, 0, 0, 1 / 4]]
    )
    assert torch.allclose(layer.mask, expected)


def test_embedding_widths_follow_cluster_sizes() -> None:
    assert sum(cluster_widths([3, 3, 1], 16)) == 16
    assert cluster_widths([1, 1, 98], 10) == [1, 1, 8]
    m = CCMTAD(ModelConfig(n_channels=5, clusters=[0, 0, 0, 1, 1], d_model=10))
    assert [e.out_features for e in m.embed] == [6, 4]
