"""The memory estimate the service refuses jobs by: its doctests, and that it grows with every
size that grows the network's tensors (the measured side is bench/emtc_memory.py)."""

from __future__ import annotations

import doctest

from model_training.emtc import memory
from model_training.emtc.config import EMTCConfig


def test_doctests() -> None:
    assert doctest.testmod(memory).failed == 0


def test_the_estimate_grows_with_each_size_and_option() -> None:
    base = memory.peak_bytes(200, 256, 4, EMTCConfig())
    longer = memory.peak_bytes(200, 512, 4, EMTCConfig()) - memory.RUNTIME_BYTES
    assert longer > 1.9 * (base - memory.RUNTIME_BYTES)  # linear in T past the IVM's key cap
    assert memory.peak_bytes(400, 256, 4, EMTCConfig(batch_size=128)) > base
    assert memory.peak_bytes(200, 256, 8, EMTCConfig()) > base
    for opts in ({"hidden": 128}, {"depth": 6}, {"n_views": 4}):
        assert memory.peak_bytes(200, 256, 4, EMTCConfig(**opts)) > base, opts
    assert memory.peak_bytes(200, 256, 4, EMTCConfig(use_ivm=False)) < base
    assert memory.peak_bytes(10, 256, 4, EMTCConfig(batch_size=4096)) == memory.peak_bytes(
        10, 256, 4, EMTCConfig(batch_size=10)
    )  # a batch is never larger than N
