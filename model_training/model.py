"""CCM-TAD: cluster-aware multi-embedding + causal MLP-mixer, reconstructing the last point.

Shapes: B batch, L window (24), C channels, d embedding width, M channel clusters.

    x [B, L, C] ─ per-cluster Linear(C_i → d_i), concatenated ─► [B, L, d] ─ BN0 ─► z
    temporal mixer over the L steps of z: CausalLinear, GELU, CausalLinear (j sees ≤ j)
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

from detector.stream import WINDOW_SIZE


@dataclass(kw_only=True)
class ModelConfig:
    n_channels: int
    clusters: list[int]  # cluster label per channel, 0..M−1
    window_size: int = WINDOW_SIZE
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


def _norm(cfg: ModelConfig) -> nn.Module:
    """BN or LN over the d features of [N, d] rows (BatchNorm1d on [N, d] pools the batch and
    the time steps, exactly as on [B, d, L])."""
    if cfg.norm == "layer":
        return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.BatchNorm1d(cfg.d_model, eps=cfg.norm_eps)


def _rows(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a feature norm to [..., d]."""
    return norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class CausalLinear(nn.Module):
    """Linear over time with weight Γ ⊙ Θ, Γ[i, j] = 1/(j+1) if i ≤ j else 0 (0-indexed):
    output step j mixes input steps 0..j only. Time-major: input/output [B, L, d] (ONNX Runtime
    runs this layout about twice as fast as [B, d, L], and needs no transposes)."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(length, length))
        self.bias = nn.Parameter(torch.zeros(length))
        nn.init.xavier_uniform_(self.weight)
        j = torch.arange(length)
        mask = (j[:, None] <= j[None, :]).float() / (j[None, :] + 1).float()
        self.mask: torch.Tensor
        self.register_buffer("mask", mask)

    def masked(self) -> torch.Tensor:
        return self.weight * self.mask  # [L in, L out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.masked().T, x) + self.bias[:, None]  # [L, L] @ [B, L, d]

    def last(self, x: torch.Tensor) -> torch.Tensor:
        """Only the last output step: [B, L, d] → [B, d]. An elementwise product and a sum:
        ONNX Runtime runs a MatMul with a 1-D operand as a slow matrix-vector loop."""
        return (x * self.masked()[:, -1, None]).sum(1) + self.bias[-1]


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

    def embed_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-embedding + BN0 of points: [..., C] → [..., d]."""
        parts = [emb(x[..., getattr(self, f"group{i}")]) for i, emb in enumerate(self.embed)]
        return _rows(self.bn0, self.drop(torch.cat(parts, dim=-1)))

    def _per_step(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Everything after the temporal mixer, on [N, d] rows (z: BN0 output, t: mixer)."""
        e = self.bn1(z + t)
        y = self.bn2(z + e + self.mixer(e))
        return self.head(self.bn3(z + y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of the last point: [B, L, C] → [B, C]."""
        z = self.embed_rows(x)  # [B, L, d]
        t = self.temporal2.last(self.act(self.temporal1(z)))  # [B, d]
        return self._per_step(z[:, -1], t)

    def step(self, point: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Incremental scoring: the new point [B, C] and the previous L − 1 steps' embeddings
        [B, L − 1, d] → (reconstruction of the point [B, C], its embedding [B, d]).
        In eval mode this equals `forward` on the window; only the new point is embedded."""
        z_new = self.embed_rows(point)  # [B, d]
        # the first temporal layer with the cache and the new step apart: no concatenation
        w1 = self.temporal1.masked()  # [L in, L out]
        t1 = (
            torch.matmul(w1[:-1].T, cache)  # [L, L − 1] @ [B, L − 1, d] → [B, L, d]
            + w1[-1][None, :, None] * z_new[:, None, :]
            + self.temporal1.bias[:, None]
        )
        t = self.temporal2.last(self.act(t1))  # [B, d]
        return self._per_step(z_new, t), z_new

    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of every step (for causality checks): [B, L, C] → [B, L, C]."""
        z = self.embed_rows(x)  # [B, L, d]
        t = self.temporal2(self.act(self.temporal1(z)))  # [B, L, d]
        b, length, d = z.shape
        rows = self._per_step(z.reshape(b * length, d), t.reshape(b * length, d))
        return rows.reshape(b, length, -1)
