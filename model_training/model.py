"""CCM-TAD: cluster-aware multi-embedding + causal MLP-mixer, reconstructing the last point.

Shapes: B batch, L window (24), C channels, d embedding width, M channel clusters.

    x [B, L, C] ─ per-cluster Linear(C_i → d_i), concatenated ─► [B, L, d] ─ BN0 ─► z
    temporal mixer on zᵀ [B, d, L]: CausalLinear, GELU, CausalLinear (step j sees steps ≤ j)
    per step:  e = BN1(z + temporal)      (double residual, as the authors' code)
               y = BN2(z + e + MLP_df(e))
               out = Linear_d→C(BN3(z + y))

Only the last step is scored, and from the temporal mixer on every operation is per step, so
`forward` computes the second causal layer's last column and the per-step part on the last
row alone (≈ 0.9 MFLOP instead of ≈ 8.5 for C = 38, d = 128, df = 5). `forward_all`
reconstructs every step; in eval mode its last row equals `forward`. During training the
BatchNorms after the temporal mixer therefore see last-step statistics only — the
distribution they normalise at inference. This is the one departure from the paper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class ModelConfig:
    n_channels: int
    clusters: list[int]  # cluster label per channel, 0..M−1
    window_size: int = 24
    d_model: int = 128
    expansion: int = 5  # df, embedding-mixer expansion factor
    dropout: float = 0.0
    norm: str = "batch"  # "batch" (paper) or "layer"
    norm_eps: float = 1e-5

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def cluster_widths(sizes: list[int], d_model: int) -> list[int]:
    """d_i = floor(C_i / C · d) for i < M, the remainder for the last; each at least 1.

    >>> cluster_widths([30, 6, 2], 128)
    [101, 20, 7]
    """
    total = sum(sizes)
    widths = [max(1, (s * d_model) // total) for s in sizes[:-1]]
    widths.append(d_model - sum(widths))
    while widths[-1] < 1:  # guard: take width from the widest cluster
        widths[widths.index(max(widths))] -= 1
        widths[-1] += 1
    return widths


class FeatureLayerNorm(nn.LayerNorm):
    """LayerNorm over the d features of each step, for [B, d] or [B, d, L] inputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return super().forward(x.transpose(1, 2)).transpose(1, 2)
        return super().forward(x)


def _norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "layer":
        return FeatureLayerNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.BatchNorm1d(cfg.d_model, eps=cfg.norm_eps)


class CausalLinear(nn.Module):
    """Linear over time with weight Γ ⊙ Θ, Γ[i, j] = 1/(j+1) if i ≤ j else 0 (0-indexed):
    output step j mixes input steps 0..j only. Input/output [B, d, L]."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(length, length))
        self.bias = nn.Parameter(torch.zeros(length))
        nn.init.xavier_uniform_(self.weight)
        j = torch.arange(length)
        mask = (j[:, None] <= j[None, :]).float() / (j[None, :] + 1).float()
        self.mask: torch.Tensor
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ (self.weight * self.mask) + self.bias

    def last(self, x: torch.Tensor) -> torch.Tensor:
        """Only the last output step: [B, d, L] → [B, d]."""
        return x @ (self.weight[:, -1] * self.mask[:, -1]) + self.bias[-1]


class CCMTAD(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, labels = cfg.d_model, torch.tensor(cfg.clusters)
        groups = [torch.nonzero(labels == m).flatten() for m in range(int(labels.max()) + 1)]
        groups = [g for g in groups if len(g)]
        widths = cluster_widths([len(g) for g in groups], d)
        for i, g in enumerate(groups):
            self.register_buffer(f"group{i}", g)
        self.n_groups = len(groups)
        self.embed = nn.ModuleList(
            nn.Linear(len(g), w) for g, w in zip(groups, widths, strict=True)
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.bn0 = _norm(cfg)
        self.temporal1 = CausalLinear(cfg.window_size)
        self.temporal2 = CausalLinear(cfg.window_size)
        self.act = nn.GELU()
        self.bn1 = _norm(cfg)
        self.mixer = nn.Sequential(
            nn.Linear(d, d * cfg.expansion),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(d * cfg.expansion, d),
        )
        self.bn2 = _norm(cfg)
        self.bn3 = _norm(cfg)
        self.head = nn.Linear(d, cfg.n_channels)

    def embed_points(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-embedding + BN0 per step: [B, L, C] → z [B, d, L]."""
        parts = [emb(x[..., getattr(self, f"group{i}")]) for i, emb in enumerate(self.embed)]
        return self.bn0(self.drop(torch.cat(parts, dim=-1)).transpose(1, 2))

    def _per_step(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Everything after the temporal mixer, on [B, d] rows (z: BN0 output, t: mixer)."""
        e = self.bn1(z + t)
        y = self.bn2(z + e + self.mixer(e))
        return self.head(self.bn3(z + y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of the last point: [B, L, C] → [B, C]."""
        z = self.embed_points(x)  # [B, d, L]
        t = self.temporal2.last(self.act(self.temporal1(z)))  # [B, d]
        return self._per_step(z[..., -1], t)

    def step(self, point: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Incremental scoring: the new point [B, C] and the previous L − 1 steps' embeddings
        [B, L − 1, d] → (reconstruction of the point [B, C], its embedding [B, d]).
        In eval mode this equals `forward` on the window; only the new point is embedded."""
        z_new = self.embed_points(point[:, None, :])[..., 0]  # [B, d]
        z = torch.cat([cache.transpose(1, 2), z_new[..., None]], dim=2)  # [B, d, L]
        t = self.temporal2.last(self.act(self.temporal1(z)))  # [B, d]
        return self._per_step(z_new, t), z_new

    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of every step (for causality checks): [B, L, C] → [B, L, C]."""
        z = self.embed_points(x)
        t = self.temporal2(self.act(self.temporal1(z)))  # [B, d, L]
        b, d, length = z.shape
        rows = self._per_step(
            z.transpose(1, 2).reshape(b * length, d), t.transpose(1, 2).reshape(b * length, d)
        )
        return rows.reshape(b, length, -1)
