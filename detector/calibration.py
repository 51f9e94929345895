"""What the online algorithm needs from training: scaling, calibration losses, parameters."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from detector.alarm import AlarmParams
from detector.pvalue import TailReference
from detector.score import ChannelScore
from detector.stream import WINDOW_SIZE


@dataclass(frozen=True, eq=False)
class Calibration:
    """What the online algorithm needs from training: scaling, calibration losses, parameters."""

    channel_names: tuple[str, ...]
    scale_min: np.ndarray  # [C] float64, training minimum per channel
    scale_range: np.ndarray  # [C] float64, training max − min (1 for constant channels)
    clip: float  # scaled values are clipped to [−clip, clip]
    sorted_losses: np.ndarray  # [n] float64, validation losses in ascending order
    params: AlarmParams
    window_size: int = WINDOW_SIZE
    top_k: int = 3
    channel_score: ChannelScore | None = None  # None: the paper's MSE
    validation_scores: np.ndarray | None = None  # [n] time-ordered (bundles since issue 23)
    min_alarm_points: float = 3.0  # the h floor, in points of the largest evidence
    max_alarm_points: float = 0.0  # the cap of h_validation, in the same points (0: none)

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @functools.cached_property
    def score_fn(self) -> ChannelScore:
        return self.channel_score or ChannelScore.mse(self.n_channels)

    @functools.cached_property
    def reference(self) -> TailReference:
        return TailReference.fit(self.sorted_losses)

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """Min-max scale to [−1, 1] with training parameters, clip, cast to float32."""
        scaled = (raw - self.scale_min) / self.scale_range * 2.0 - 1.0
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def unclipped(self, raw: np.ndarray) -> np.ndarray:
        """The same scaling without the clip, float64 [N, C]: what the score's deviation term
        reads (a distance should grow with the excursion, the model's input should not)."""
        return np.asarray(
            (np.asarray(raw, np.float64) - self.scale_min) / self.scale_range * 2.0 - 1.0
        )

    def p_values(self, losses: np.ndarray) -> np.ndarray:
        """Share of calibration scores above each score, Pareto tail beyond the top."""
        return self.reference.p_values(losses)
