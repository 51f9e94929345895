"""IVM mask: shape, threshold rule, evolution between epochs, gradient from the clustering loss."""

import numpy as np
import torch

from model_training.emtc.model import EMTC, cluster_contrastive_loss, init_parameters
from model_training.emtc.train import EMTCConfig, fit_predict


def _model(d: int = 3, seed: int = 0) -> EMTC:
    with torch.device("meta"):
        m = EMTC(d, hidden=16, ivm_hidden=4, d_k=4, n_views=2, depth=2)
    m.to_empty(device="cpu")
    init_parameters(m, torch.Generator().manual_seed(seed))
    return m


def test_importance_shape_and_range() -> None:
    m = _model()
    p = m.importance(torch.randn(5, 20, 3))
    assert p is not None and p.shape == (5, 20, 3)
    assert bool(((p > 0) & (p < 1)).all())


def test_threshold_rule_and_epoch_masks() -> None:
    """The mask applied in epoch e+1 is exactly [p ≥ ε] of the IVM in epoch e."""
    x = np.random.default_rng(0).normal(size=(12, 16, 2)).astype(np.float32)
    cfg = EMTCConfig(epochs=3, hidden=16, ivm_hidden=4, d_k=4, depth=1, epsilon=0.4, seed=1)
    res = fit_predict(x, 2, cfg)
    assert res.final_mask is not None and res.final_mask.shape == (12, 16, 2)
    assert set(np.unique(res.final_mask)) <= {0, 1}
    ratios = [h["mask_ratio"] for h in res.history]
    assert abs(ratios[0] - cfg.random_mask_ratio) < 0.1  # epoch 1: random mask
    assert all(h["mask_change"] > 0 for h in res.history)  # the mask evolves every epoch


def test_threshold_matches_importance() -> None:
    m = _model()
    x = torch.randn(4, 30, 3)
    p = m.importance(x)
    assert p is not None
    eps = 0.3
    mask = (p >= eps).float()
    assert 0.0 < float(1 - mask.mean()) < 0.5  # standardised score: some, not most, masked
    out = m(x, mask)
    # forward value of the masked input is exactly X ⊙ M (straight-through term is zero)
    x_tilde = x * mask + x * (p - p.detach())
    assert torch.equal(x_tilde, x * mask)
    assert out.fused.shape == (4, 16)


def test_importance_network_gets_gradient_from_clustering_loss() -> None:
    m = _model()
    x = torch.randn(8, 24, 3)
    p = m.importance(x)
    assert p is not None
    mask = (p.detach() >= 0.3).float()
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    loss = cluster_contrastive_loss(m(x, mask).fused, labels, tau=0.5)
    loss.backward()
    assert m.ivm is not None
    grads = [q.grad for q in m.ivm.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    assert all(float(g.abs().sum()) > 0 for g in grads if g is not None)


def test_importance_responds_to_clustering_loss_step() -> None:
    m = _model()
    x = torch.randn(8, 24, 3)
    labels = torch.tensor([0, 1] * 4)
    with torch.no_grad():
        p0 = m.importance(x)
    assert p0 is not None
    mask = (p0 >= 0.3).float()
    assert m.ivm is not None
    opt = torch.optim.SGD(m.ivm.parameters(), lr=1.0)
    for _ in range(3):
        opt.zero_grad()
        cluster_contrastive_loss(m(x, mask).fused, labels, tau=0.5).backward()
        opt.step()
    with torch.no_grad():
        p1 = m.importance(x)
    assert p1 is not None
    assert float((p1 - p0).abs().max()) > 1e-4


def test_long_series_attend_to_pooled_keys_and_short_ones_are_unchanged() -> None:
    """Past `key_steps` the attention reads pooled keys ([B, D, T, ≤ key_steps]); below it the
    output is the full attention's, bit for bit; every step still gets its own score."""
    m = _model()
    ivm = m.ivm
    assert ivm is not None
    short = torch.randn(2, 40, 3)
    full = ivm(short)
    ivm.key_steps = 8  # the same weights, now pooling 40 steps into windows of 5
    pooled = ivm(short)
    assert pooled.shape == full.shape and not torch.equal(pooled, full)
    assert bool(((pooled > 0) & (pooled < 1)).all())
    seen: list[tuple[int, ...]] = []
    softmax = torch.softmax

    def spy(x: torch.Tensor, dim: int) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return softmax(x, dim=dim)

    torch.softmax = spy  # type: ignore[assignment]
    try:
        long = torch.randn(2, 1001, 3, requires_grad=True)
        p = ivm(long)
    finally:
        torch.softmax = softmax  # type: ignore[assignment]
    assert seen == [(2, 3, 1001, 8)]  # windows of ⌈1001 / 8⌉ = 126 steps: 8 pooled keys
    p.sum().backward()
    assert long.grad is not None and bool(long.grad.abs().sum() > 0)
    ivm.key_steps = 10_000
    assert torch.equal(ivm(short), full)
