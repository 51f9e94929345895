"""Scaling of a set of series before clustering, shared by EMTC and the raw k-means baseline
(numpy only: the evaluation's baselines run without torch)."""

from __future__ import annotations

import numpy as np


def zscore_per_variate(x: np.ndarray) -> np.ndarray:
    """Per-variate standardisation over all samples and steps; keeps amplitude differences
    between samples (per-series z-norm would erase e.g. standing vs running in BasicMotions)."""
    mu = x.mean(axis=(0, 1), keepdims=True)
    sd = x.std(axis=(0, 1), keepdims=True)
    return ((x - mu) / np.where(sd > 1e-8, sd, 1.0)).astype(np.float32)
