"""How much memory one EMTC fit needs, from N, T, D and its options, before it starts.

Why an estimate at all: the limits on N·T·D bound the input, not the activations. The IVM's
attention alone is [B, D, T, min(T, 256)] per batch (model.py pools the keys of longer series),
so a request inside every size limit can still ask for hundreds of gigabytes. The service
refuses such a job up front (422) and enforces TAD_CLUSTERING_MAX_MEMORY_MB with an OS limit
while the job runs.

The count follows the network in `model.py`, tensor by tensor (float32); the constants for
what autograd keeps alive were measured with `bench/emtc_memory.py`, which prints this
estimate next to the measured peak for a grid of shapes (docs/performance.md). It errs high.

>>> from model_training.emtc.config import EMTCConfig
>>> small = peak_bytes(100, 128, 3, EMTCConfig())
>>> 800 << 20 < small < 2 << 30
True
>>> peak_bytes(2000, 2000, 1, EMTCConfig(batch_size=4096, hidden=256, depth=6, n_views=4)) > 1 << 40
True
"""

from __future__ import annotations

from model_training.emtc.config import IVM_KEY_STEPS, EMTCConfig
from model_training.emtc.minirocket import BATCH_SERIES, DEFAULT_FEATURES, KERNEL_LENGTH

FLOAT_BYTES = 4
RUNTIME_BYTES = 800 << 20  # torch, scikit-learn and numpy after a first epoch (measured)
ATTENTION_COPIES = 3  # [B, D, T, P]: ~2 measured at the peak of backward, 1 spare
CONV_BLOCK_COPIES = 6  # per residual block: gelu, conv, gelu, conv, sum, residual
MLP_LAYER_COPIES = 2  # per Linear: its output and the GELU's
SAFETY = 1.25  # over every term but the runtime; the bench's lowest ratio is then ≥ 1.1
DATASET_COPIES = 7  # upload decode, float32 copy, z-score copy, x, mask, next mask, embed


def activation_floats(batch: int, t: int, d: int, cfg: EMTCConfig) -> float:
    """Floats alive during one training step's forward pass, for `batch` series."""
    h, v = cfg.hidden, cfg.n_views
    per_view = (
        h * (1 + CONV_BLOCK_COPIES * cfg.depth)  # input conv + dilated stack [B, H, T]
        + MLP_LAYER_COPIES * 6 * h  # decoder: 6 Linear layers on [B, T, H]
        + d  # reconstruction [B, T, D]
    )
    transfers = v * (v - 1) * MLP_LAYER_COPIES * 4 * h  # 4-layer MLPs between views
    ivm = 0.0
    if cfg.use_ivm:
        hm = d * cfg.ivm_hidden
        ivm = (
            hm * (1 + CONV_BLOCK_COPIES * cfg.ivm_depth)  # per-variate encoders [B, D·Hm, T]
            + 2 * d * cfg.d_k  # queries and keys
            + ATTENTION_COPIES * d * min(t, IVM_KEY_STEPS)  # [B, D, T, min(T, P)]
            + 3 * hm  # S^(d) and its reshape
            + 4 * d  # scores, p, x̃
        )
    return float(batch) * t * (v * per_view + transfers + ivm)


def parameter_count(d: int, cfg: EMTCConfig) -> int:
    """Weights of the network (biases included), to size weights, gradients and Adam state."""
    h, v, k = cfg.hidden, cfg.n_views, cfg.kernel_size
    view = d * h + h + cfg.depth * 2 * (h * h * k + h)
    decoder = (h * h + h) * 5 + h * d + d
    transfer = (h * h + h) * 4
    ivm = 0
    if cfg.use_ivm:
        hm = cfg.ivm_hidden
        ivm = d * (hm + hm + cfg.ivm_depth * 2 * (hm * hm * k + hm) + 2 * (hm * cfg.d_k) + hm)
    return v * (view + decoder) + v * (v - 1) * transfer + ivm


def peak_bytes(n: int, t: int, d: int, cfg: EMTCConfig) -> int:
    """Estimated peak resident memory of `fit_predict` on [n, t, d] with `cfg`, in bytes."""
    batch = min(cfg.batch_size, n)
    training = activation_floats(batch, t, d, cfg)
    weights = 4 * parameter_count(d, cfg)  # weights, gradients, Adam's two moments
    dataset = DATASET_COPIES * n * t * d
    return int(RUNTIME_BYTES + SAFETY * FLOAT_BYTES * (training + weights + dataset))


def main_contributors(n: int, t: int, d: int, cfg: EMTCConfig) -> list[str]:
    """The options and sizes that drive the estimate, for the refusal message."""
    names = [f"N={n}", f"T={t}", f"D={d}", f"batch_size={cfg.batch_size}"]
    names += [f"hidden={cfg.hidden}", f"depth={cfg.depth}", f"n_views={cfg.n_views}"]
    if cfg.use_ivm:
        names.append(f"use_ivm=true (its attention grows with batch·D·T·min(T, {IVM_KEY_STEPS}))")
    return names


MINIROCKET_FEATURES = DEFAULT_FEATURES
MINIROCKET_MIN_T = KERNEL_LENGTH
MINIROCKET_RUNTIME_BYTES = 250 << 20  # numpy + scikit-learn, no torch (measured ~190 MB)


def minirocket_peak_bytes(n: int, t: int, d: int, n_features: int) -> int:
    """Estimated peak of the MiniRocket peer: the nine dilated taps of a batch of series
    ([9, B, D, T]) and a kernel's temporaries, the features [N, F] and their float64 scaled
    copy (and k-means' own), and the input.

    >>> minirocket_peak_bytes(100, 206, 3, 10_000) < 400 << 20
    True
    """
    batch = min(n, BATCH_SERIES)
    taps = 9 * batch * d * t * 2  # the taps and one kernel's selected copy
    features = n * n_features * (1 + 2 + 2)  # float32 features, float64 scaled, k-means' copy
    dataset = 3 * n * t * d
    return int(MINIROCKET_RUNTIME_BYTES + SAFETY * FLOAT_BYTES * (taps + features + dataset))
