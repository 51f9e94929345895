"""What one stream keeps between points (`StreamState`) and what a step returns (`StreamResults`).

Plain data: `detector.state_codec` turns a state into bytes and back; `detector.online` advances
it. The ring buffer and the recent scores are read through `history()` and `recent()`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from detector.alarm import AlarmEvent, AlarmParams, OpenAlarm

WINDOW_SIZE = 24  # L, the model's window: the one default (training, bundles, streams)
SCORE_HISTORY = 512  # recent scores a stream keeps for a re-baseline


@dataclass(slots=True, eq=False)
class StreamState:
    """Per-stream state: plain data (see `detector.state_codec` for bytes round-trips)."""

    stream_id: str
    n_channels: int
    window_size: int = WINDOW_SIZE
    buffer: np.ndarray = field(default=None)  # type: ignore[arg-type]  # [L, C] raw, ring
    count: int = 0  # points accepted so far; the next point gets this index
    last_ts: float = -math.inf
    s: float = 0.0
    negative_run: int = 0
    last_zero_index: int = 0
    last_zero_ts: float = math.nan
    alarms_opened: int = 0
    alarm: OpenAlarm | None = None
    params: AlarmParams | None = None  # per-stream override of the bundle's α/h
    level: float = 0.0  # drift level of log scores (detector.adaptation)
    baseline: float = 0.0  # operator's re-baseline shift of log scores
    recent_scores: np.ndarray = field(default=None)  # type: ignore[arg-type]  # [R] float32 ring
    # derived, never serialised: step-graph embeddings [L − 1, d] of the last L − 1 points,
    # valid while cache_count == count and cache_token names the scorer (detector.incremental)
    embedding_cache: np.ndarray | None = None
    cache_count: int = -1
    cache_token: int = 0

    def __post_init__(self) -> None:
        if self.buffer is None:
            self.buffer = np.zeros((self.window_size, self.n_channels), dtype=np.float64)
        if self.recent_scores is None:
            self.recent_scores = np.full(SCORE_HISTORY, np.nan, np.float32)

    def recent(self, n_points: int) -> np.ndarray:
        """Scores [≤n] of the last min(n, count, R) points in time order (NaN: warm-up)."""
        r = len(self.recent_scores)
        n = min(n_points, self.count, r)
        return self.recent_scores[np.arange(self.count - n, self.count) % r].astype(np.float64)

    def recent_list(self, n_points: int) -> list[float]:
        """`recent` as Python floats, NaN-padded at the front to n (cheap for a few points: two
        slices of the ring, no index arrays)."""
        r = len(self.recent_scores)
        n = min(n_points, self.count, r)
        lo, hi = (self.count - n) % r, self.count % r
        ring = self.recent_scores
        got = ring[lo:hi].tolist() if lo < hi or n == 0 else ring[lo:].tolist() + ring[:hi].tolist()
        return [math.nan] * (n_points - n) + got

    def last_point(self) -> np.ndarray | None:
        """The newest raw point [C] (a view into the ring), None before the first."""
        return self.buffer[(self.count - 1) % self.window_size] if self.count else None

    def history(self) -> np.ndarray:
        """The last min(count, L − 1) raw points in time order, [≤L−1, C]."""
        n = min(self.count, self.window_size - 1)
        idx = np.arange(self.count - n, self.count) % self.window_size
        return self.buffer[idx]


@dataclass(slots=True, eq=False, kw_only=True)
class StreamResults:
    """Column-wise results of n consecutive points of one stream."""

    stream_id: str
    index: np.ndarray  # [n] int64 position of each point in its stream
    timestamp: np.ndarray  # [n] float64
    warmup: np.ndarray  # [n] bool, True while fewer than L points were seen
    score: np.ndarray  # [n] float64 anomaly score g_t (before the shift), NaN during warm-up
    p_value: np.ndarray  # [n] float64, NaN during warm-up
    evidence: np.ndarray  # [n] float64 β, 0 during warm-up
    accumulated: np.ndarray  # [n] float64 s
    alarm: np.ndarray  # [n] bool, s > h
    events: list[AlarmEvent]
