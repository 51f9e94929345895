"""What kind of signal each channel is, from the nominal fit period alone.

Real files mix sensors with things that are not sensors: a channel that never moved in
training (a setpoint, a spare input, a telemetry word that was idle) and status or command
flags with a handful of levels (54 of MSL's 55 columns per entity are 0/1 command flags). The
trainer names both in the bundle's manifest and in `tad train`'s output, so a user sees what
the model was given, and the score treats a constant channel's departure by its size with a
neutral weight (detector.score) instead of dividing by its zero spread.

>>> x = np.array([[1.0, 0.0, 0.5], [1.0, 1.0, 0.7], [1.0, 0.0, 0.9], [1.0, 1.0, 0.2]])
>>> t = channel_types(x, ("setpoint", "valve_open", "temperature"))
>>> t.constant, t.status, t.constant_mask.tolist()
(('setpoint',), ('valve_open',), [True, False, False])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_STATUS_LEVELS = 3  # a channel with 2..3 distinct values in training is a status/flag


@dataclass(frozen=True)
class ChannelTypes:
    constant: tuple[str, ...]  # one value over the whole fit period
    status: tuple[str, ...]  # 2..MAX_STATUS_LEVELS distinct values
    constant_mask: np.ndarray  # [C] bool
    status_mask: np.ndarray  # [C] bool

    @property
    def context_mask(self) -> np.ndarray | None:
        """[C] bool: channels scored as context (constant or status) when the entity also has
        sensor channels; None when every channel is of one kind."""
        ctx = self.constant_mask | self.status_mask
        return ctx if ctx.any() and not ctx.all() else None

    def as_manifest(self) -> dict[str, list[str]]:
        return {"constant": list(self.constant), "status": list(self.status)}

    def describe(self) -> str | None:
        """One line for `tad train`, or None when every channel is a plain sensor."""
        parts = []
        if self.constant:
            parts.append(f"constant in training: {', '.join(self.constant)}")
        if self.status:
            parts.append(f"status/flag (≤ {MAX_STATUS_LEVELS} levels): {', '.join(self.status)}")
        return "; ".join(parts) or None


def channel_types(fit: np.ndarray, names: Sequence[str]) -> ChannelTypes:
    """Types of the channels of the fit period [T, C] (raw values)."""
    x = np.asarray(fit, np.float64)
    levels = np.array([len(np.unique(x[:, j])) for j in range(x.shape[1])])
    const = levels <= 1
    status = (levels >= 2) & (levels <= MAX_STATUS_LEVELS)
    pick = lambda mask: tuple(str(names[int(j)]) for j in np.flatnonzero(mask))  # noqa: E731
    return ChannelTypes(pick(const), pick(status), const, status)
