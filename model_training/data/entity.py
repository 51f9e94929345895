"""The one in-memory shape every dataset loader produces.

Training, calibration and benchmarking code only ever see an ``Entity``, so a new dataset needs a
loader and nothing else. The invariants are checked once here, at construction, so downstream code
can index arrays without re-validating them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from model_training.errors import DatasetFormatError

__all__ = ["DatasetFormatError", "Entity"]


@dataclass(frozen=True)
class Entity:
    """One monitored unit (a machine, a spacecraft channel, a NAB series, a table).

    ``train`` holds nominal data only; ``test`` may contain anomalies, marked by ``test_labels``.
    Multi-entity benchmarks train one model per entity, which is why this is the unit of loading.
    """

    name: str
    train: np.ndarray
    test: np.ndarray | None
    test_labels: np.ndarray | None
    channel_names: tuple[str, ...]
    test_timestamps: np.ndarray | None = None
    # a user's table: how it was read (separator, decimal mark, time and label columns), the
    # number of leading test rows that are the nominal period trained on, and notes for the user
    table: dict[str, Any] | None = None
    trained_rows_in_test: int = 0
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Reject inconsistent shapes early: a mismatch here is a loader bug, not a data quirk."""
        _check_matrix(self.name, "train", self.train, len(self.channel_names))
        if self.test is not None:
            _check_matrix(self.name, "test", self.test, len(self.channel_names))
        if self.test_labels is not None:
            if self.test is None:
                raise ValueError(f"{self.name}: test_labels given without test data")
            _check_vector(self.name, "test_labels", self.test_labels, len(self.test), np.int8)
            if np.any((self.test_labels != 0) & (self.test_labels != 1)):
                raise ValueError(f"{self.name}: test_labels must be 0 or 1")
        if self.test_timestamps is not None:
            if self.test is None:
                raise ValueError(f"{self.name}: test_timestamps given without test data")
            _check_vector(
                self.name, "test_timestamps", self.test_timestamps, len(self.test), np.float64
            )

    @property
    def n_channels(self) -> int:
        """Number of channels C, the width of ``train`` and ``test``."""
        return len(self.channel_names)


def _check_matrix(name: str, field: str, array: np.ndarray, n_channels: int) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim != 2:
        raise ValueError(f"{name}: {field} must be a 2-D float32 array")
    if array.shape[1] != n_channels:
        raise ValueError(
            f"{name}: {field} has {array.shape[1]} columns but {n_channels} channel names"
        )


def _check_vector(
    name: str, field: str, array: np.ndarray, length: int, dtype: type[np.generic]
) -> None:
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
        raise ValueError(f"{name}: {field} must be a 1-D {np.dtype(dtype).name} array")
    if len(array) != length:
        raise ValueError(f"{name}: {field} has {len(array)} entries but test has {length} rows")
