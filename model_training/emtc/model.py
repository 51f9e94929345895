"""EMTC network: IVM importance masking, MEV view encoders, CRL decoders, and the losses.

Shapes: B batch, T time steps, D variates, H view width, Hm per-variate width, V views.

Gradient path through the mask (the public code has none): the hard mask applied in epoch e is
M_e = [p ≥ ε] computed from the IVM at the end of epoch e−1 (random in epoch 1). During epoch e
the model sees X̃ = X ⊙ M_e + X ⊙ (p − sg(p)) with p the *current* importance: the forward value is
exactly X ⊙ M_e (the paper's crisp mask), while ∂L/∂p = X ⊙ ∂L/∂X̃ (a straight-through
estimator), so the contrastive and reconstruction losses train the importance network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model_training.emtc.config import IVM_KEY_STEPS


class DilatedConvStack(nn.Module):
    """TS2Vec-style residual blocks (GELU → dilated conv, twice) on [B, C, T]; 'same' padding."""

    def __init__(
        self, channels: int, depth: int, kernel_size: int, dilation_base: int, groups: int = 1
    ) -> None:
        super().__init__()
        dils = [dilation_base**i for i in range(depth)]
        self.conv_a = nn.ModuleList([self._conv(channels, kernel_size, d, groups) for d in dils])
        self.conv_b = nn.ModuleList([self._conv(channels, kernel_size, d, groups) for d in dils])

    @staticmethod
    def _conv(channels: int, kernel_size: int, dil: int, groups: int) -> nn.Conv1d:
        pad = dil * (kernel_size - 1) // 2
        return nn.Conv1d(channels, channels, kernel_size, padding=pad, dilation=dil, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T] → [B, C, T]
        for conv1, conv2 in zip(self.conv_a, self.conv_b, strict=True):
            x = x + conv2(F.gelu(conv1(F.gelu(x))))
        return x


class ImportanceNetwork(nn.Module):
    """IVM: per-variate encoders f_θ^(d) (grouped convs), self-attention S^(d), scalar score.

    The per-timestamp score of S^(d) ∈ R^{T×Hm} is a per-variate linear projection, standardised
    over time and squashed: p = σ((s − mean_t s) / std_t s). Standardising makes ε a relative
    rule ("mask timestamps well below this series' average importance") that cannot collapse to
    masking everything or nothing; ε = 0.3 masks ≈ 20% of entries for a Gaussian-shaped score.

    Long series: every one of the T queries attends to at most `key_steps` keys — beyond that
    the keys and values are averaged over windows of ⌈T / key_steps⌉ steps — so the attention is
    [B, D, T, min(T, key_steps)], linear in T, instead of [B, D, T, T]. The paper's full
    attention is kept for T ≤ key_steps (256 by default: every UEA set here but
    AtrialFibrillation, T = 640). On 15 × 2,500 × 4 a training step went from 12× to 1.9× the
    no-mask network's (bench/emtc_long.py).
    """

    def __init__(
        self,
        n_vars: int,
        hidden: int,
        d_k: int,
        depth: int,
        kernel_size: int,
        key_steps: int = IVM_KEY_STEPS,
    ) -> None:
        super().__init__()
        self.n_vars, self.hidden, self.d_k, self.key_steps = n_vars, hidden, d_k, key_steps
        g = n_vars
        self.embed = nn.Conv1d(g, g * hidden, 1, groups=g)  # Linear(1 → Hm) per variate
        self.encoder = DilatedConvStack(g * hidden, depth, kernel_size, 2, groups=g)
        self.query = nn.Conv1d(g * hidden, g * d_k, 1, groups=g)
        self.key = nn.Conv1d(g * hidden, g * d_k, 1, groups=g)
        self.score = nn.Conv1d(g * hidden, g, 1, groups=g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, T, D] → p [B, T, D] in (0, 1)
        b, t, d = x.shape
        z = self.encoder(self.embed(x.transpose(1, 2)))  # [B, D·Hm, T]
        q = self.query(z).view(b, d, self.d_k, t).transpose(2, 3)  # [B, D, T, dk]
        k, zk = self.key(z), z  # [B, D·dk, T], [B, D·Hm, T]
        if t > self.key_steps:  # pooled keys and values: [B, ·, P], P = ⌈T / window⌉
            window = math.ceil(t / self.key_steps)
            k = F.avg_pool1d(k, window, window, ceil_mode=True)
            zk = F.avg_pool1d(zk, window, window, ceil_mode=True)
        tk = k.shape[-1]
        attn = torch.softmax(q @ k.view(b, d, self.d_k, tk) / math.sqrt(self.d_k), dim=-1)
        zv = zk.view(b, d, self.hidden, tk).transpose(2, 3)  # [B, D, P, Hm]
        s = attn @ zv  # S^(d): [B, D, T, Hm]  (attn [B, D, T, P])
        s = s.transpose(2, 3).reshape(b, d * self.hidden, t)
        score = self.score(s)  # [B, D, T]
        mu = score.mean(dim=-1, keepdim=True)
        sd = score.std(dim=-1, keepdim=True, unbiased=False) if t > 1 else torch.ones_like(mu)
        p = torch.sigmoid((score - mu) / (sd + 1e-5))
        return p.transpose(1, 2)  # [B, T, D]


def mlp(width_in: int, width: int, width_out: int, layers: int) -> nn.Sequential:
    """`layers` Linear layers with GELU between; applied on the last axis (per time step)."""
    mods: list[nn.Module] = []
    dims = [width_in] + [width] * (layers - 1) + [width_out]
    for i in range(layers):
        mods.append(nn.Linear(dims[i], dims[i + 1]))
        if i < layers - 1:
            mods.append(nn.GELU())
    return nn.Sequential(*mods)


class ViewEncoder(nn.Module):
    """MEV view f_Θ^(v): Linear(D → H) then dilated convs; views differ by dilation base."""

    def __init__(self, n_vars: int, hidden: int, depth: int, kernel_size: int, base: int) -> None:
        super().__init__()
        self.inp = nn.Conv1d(n_vars, hidden, 1)
        self.convs = DilatedConvStack(hidden, depth, kernel_size, base)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] → [B, T, H]
        return self.convs(self.inp(x.transpose(1, 2))).transpose(1, 2)


@dataclass
class EMTCOutput:
    """Everything the losses need from one forward pass."""

    importance: torch.Tensor | None  # p [B, T, D] or None without IVM
    views: list[torch.Tensor]  # V × [B, T, H]
    recons: list[torch.Tensor]  # V × [B, T, D]
    transfers: dict[tuple[int, int], torch.Tensor]  # (i, j) → H_{i→j}(F^(i)) [B, T, H]
    fused: torch.Tensor  # F [B, H]: mean over views of the time-max-pooled views


class EMTC(nn.Module):
    """The full network; `use_ivm=False` gives the no-IVM ablation used as a baseline."""

    def __init__(
        self,
        n_vars: int,
        hidden: int = 64,
        ivm_hidden: int = 8,
        d_k: int = 8,
        ivm_depth: int = 1,
        n_views: int = 2,
        depth: int = 3,
        kernel_size: int = 3,
        use_ivm: bool = True,
    ) -> None:
        super().__init__()
        self.use_ivm = use_ivm
        self.ivm = (
            ImportanceNetwork(n_vars, ivm_hidden, d_k, ivm_depth, kernel_size) if use_ivm else None
        )
        self.encoders = nn.ModuleList(
            [ViewEncoder(n_vars, hidden, depth, kernel_size, base=v + 1) for v in range(n_views)]
        )
        self.decoders = nn.ModuleList([mlp(hidden, hidden, n_vars, 6) for _ in range(n_views)])
        self.pairs = [(i, j) for i in range(n_views) for j in range(n_views) if i != j]
        self.transfer = nn.ModuleDict(
            {f"{i}_{j}": mlp(hidden, hidden, hidden, 4) for i, j in self.pairs}
        )

    def importance(self, x: torch.Tensor) -> torch.Tensor | None:  # [B, T, D] → [B, T, D]
        return self.ivm(x) if self.ivm is not None else None

    def forward(
        self, x: torch.Tensor, hard_mask: torch.Tensor, with_importance: bool = True
    ) -> EMTCOutput:
        """x: original series [B, T, D]; hard_mask: this epoch's {0,1} mask [B, T, D].

        `with_importance=False` skips the IVM (its straight-through term is exactly zero in value,
        so inference passes that need no gradient can save its cost).
        """
        p = self.importance(x) if with_importance else None
        if p is None:
            x_tilde = x * hard_mask if self.use_ivm else x
        else:
            x_tilde = x * hard_mask + x * (p - p.detach())  # value exactly X ⊙ M; ∂/∂p = X
        views = [enc(x_tilde) for enc in self.encoders]  # V × [B, T, H]
        recons = [dec(f) for dec, f in zip(self.decoders, views, strict=True)]
        transfers = {(i, j): self.transfer[f"{i}_{j}"](views[i]) for i, j in self.pairs}
        fused = torch.stack([f.max(dim=1).values for f in views]).mean(dim=0)  # [B, H]
        return EMTCOutput(p, views, recons, transfers, fused)


def cluster_contrastive_loss(fused: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """L_contra = mean_i −log(L⁺_i / (L⁺_i + L⁻_i)) over anchors with ≥ 1 positive in the batch.

    fused [B, H], labels [B] (k-means pseudo-labels). Computed in log space for stability.
    """
    z = F.normalize(fused, dim=1)
    logits = z @ z.T / tau  # [B, B] cosine / τ
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    same = (labels[:, None] == labels[None, :]) & ~eye
    neg_inf = torch.finfo(logits.dtype).min
    log_pos = torch.logsumexp(logits.masked_fill(~same, neg_inf), dim=1)
    log_all = torch.logsumexp(logits.masked_fill(eye, neg_inf), dim=1)
    valid = same.any(dim=1)
    if not bool(valid.any()):
        return fused.sum() * 0.0
    return (log_all - log_pos)[valid].mean()


def emtc_losses(
    out: EMTCOutput, x: torch.Tensor, labels: torch.Tensor, tau: float
) -> dict[str, torch.Tensor]:
    """contra, intra (Σ_v MSE(X, R^(v)(F^(v)))), inter (Σ_{i≠j} MSE(F^(j), H_{i→j}(F^(i))))."""
    intra = torch.stack([F.mse_loss(r, x) for r in out.recons]).sum()
    if out.transfers:
        inter = torch.stack(
            [F.mse_loss(h, out.views[j]) for (_, j), h in out.transfers.items()]
        ).sum()
    else:
        inter = x.new_zeros(())
    contra = cluster_contrastive_loss(out.fused, labels, tau)
    return {"contra": contra, "intra": intra, "inter": inter}


@torch.no_grad()
def init_parameters(model: nn.Module, gen: torch.Generator) -> None:
    """PyTorch-default-style init drawn from a local generator (no global RNG is touched)."""
    for mod in model.modules():
        if isinstance(mod, nn.Linear | nn.Conv1d):
            w = mod.weight
            fan_in = w[0].numel()
            bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=√5) bound, as PyTorch defaults
            w.copy_((torch.rand(w.shape, generator=gen) * 2 - 1) * bound)
            if mod.bias is not None:
                b = mod.bias
                b.copy_((torch.rand(b.shape, generator=gen) * 2 - 1) * bound)
