"""EMTC's hyperparameters, importable without torch (the service sizes jobs from them)."""

from __future__ import annotations

from dataclasses import dataclass

IVM_KEY_STEPS = 256  # the IVM's attention reads at most this many (pooled) key steps


@dataclass
class EMTCConfig:
    """All hyperparameters. Defaults were fixed before looking at any TEST-split label."""

    epochs: int = 200  # the paper's budget; training stops earlier once converged (below)
    batch_size: int = 64
    lr: float = 1e-3
    hidden: int = 64  # view width H
    ivm_hidden: int = 8  # per-variate encoder width Hm
    d_k: int = 8  # IVM attention key width
    ivm_depth: int = 1  # dilated residual blocks in each per-variate encoder
    n_views: int = 2  # V
    depth: int = 3  # dilated residual blocks per view encoder
    kernel_size: int = 3
    epsilon: float = 0.3  # IVM threshold on the standardised importance p ∈ (0, 1)
    random_mask_ratio: float = 0.2  # epoch-1 random mask: fraction of entries zeroed
    tau: float = 0.5  # contrastive temperature
    warmup_epochs: int = 0  # epochs trained on α·L_intra + β·L_inter only, before L_contra
    contra_ramp_epochs: int = 0  # after warm-up, L_contra's weight rises linearly over these
    # Label-free stopping ("until convergence", Algorithm 1): stop once the pseudo-labels changed
    # for at most `stop_label_change` of the samples (after matching) in `stop_patience`
    # consecutive epochs, no earlier than `min_epochs`; 0 patience = always train `epochs`.
    # Chosen on the UEA TRAIN splits (bench/emtc_design.py), never on TEST labels.
    stop_patience: int = 5
    stop_label_change: float = 0.01
    min_epochs: int = 10
    alpha: float = 1.0  # weight of L_intra (fixed, not learned)
    beta: float = 0.1  # weight of L_inter (fixed, not learned)
    use_ivm: bool = True  # False = the no-IVM ablation (no mask at all)
    normalize: bool = True  # per-variate z-score over the whole dataset before training
    kmeans_n_init: int = 5  # per-epoch pseudo-labels
    final_kmeans_n_init: int = 10
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """Reject settings that would silently train nonsense."""
        if self.warmup_epochs < 0 or self.contra_ramp_epochs < 0:
            raise ValueError("warmup_epochs and contra_ramp_epochs must be >= 0")
        if self.stop_patience < 0 or self.min_epochs < 1:
            raise ValueError("stop_patience >= 0 and min_epochs >= 1 are required")
        if not 0.0 <= self.stop_label_change < 1.0:
            raise ValueError(f"stop_label_change must be in [0, 1), got {self.stop_label_change}")
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0:
            raise ValueError("epochs >= 1, batch_size >= 2 and lr > 0 are required")
        if not 0.0 < self.epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {self.epsilon}")
        if not 0.0 <= self.random_mask_ratio < 1.0:
            raise ValueError(f"random_mask_ratio must be in [0, 1), got {self.random_mask_ratio}")
        if self.tau <= 0 or self.alpha < 0 or self.beta < 0:
            raise ValueError("tau > 0, alpha >= 0, beta >= 0 are required")
        if self.n_views < 1 or self.hidden < 1 or self.depth < 1:
            raise ValueError("n_views, hidden and depth must be >= 1")
