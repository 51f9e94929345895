"""The whole online CCM-TAD algorithm for one stream: window → score → evidence → alarm.

Per point x_t (paper, Section 3.4, with the project's score and p-value; docs/ccm_tad.md):
  window  X = the last L raw points, min-max scaled and clipped        [L, C]
  score   g_t = mean_c contribution_c (detector.score: the paper's MSE, or the default hybrid
          of per-channel normalised model error and distance from the training mean)
  shift   g'_t = g_t · exp(−(baseline + max(level_{t−1}, 0)))   (detector.adaptation)
  p-value p_t = share of the calibration scores above g'_t, Pareto tail beyond (detector.pvalue)
  evidence β_t = log(α / (p_t + ε)); a non-finite score is no evidence (β = 0)
  accumulated s_t = 0 if β_{t−1..t−δ} were all negative, else max(s_{t−1} + β_t, 0)
  alarm   while s_t > h; opened at the trigger t_a with onset t_a* = last t < t_a with s_t = 0;
          closed when s falls back to ≤ h, with offset t_b* = last t in (t_a, t_b] with β_t > 0.

Warm-up points (fewer than L points seen) have no score; they count as s = 0, β = 0.
The model call is a `Reconstructor`, so this module imports no runtime, web or store code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from detector.adaptation import adapt_level, log_shift, rebaseline_shift
from detector.errors import ChannelCountError, NonFiniteValueError, OutOfOrderError
from detector.pvalue import TailReference
from detector.score import ChannelScore

WINDOW_SIZE = 24
SCORE_HISTORY = 512  # recent scores a stream keeps for a re-baseline


class Reconstructor(Protocol):
    """Anything that maps scaled windows [B, L, C] float32 to the last point's recon [B, C]."""

    def reconstruct(self, windows: np.ndarray) -> np.ndarray: ...


class Incremental(Protocol):
    """A cache-using scorer (detector.incremental): reconstructions [N, C] of every new point
    (rows of stream s: offsets[s]:offsets[s + 1])."""

    def reconstruct(
        self, states: Sequence[StreamState], points: np.ndarray, offsets: np.ndarray
    ) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class AlarmParams:
    """α (significance level), h (alarm threshold on s), δ (reset run), ε (p-value floor) and
    the drift adaptation horizon in points (0: off; detector.adaptation)."""

    alpha: float
    threshold: float
    delta: int = 5
    epsilon: float = 1e-4
    adapt_points: int = 0


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

    def p_values(self, losses: np.ndarray) -> np.ndarray:
        """Share of calibration scores above each score, Pareto tail beyond the top."""
        return self.reference.p_values(losses)


def accumulate(s_prev: float, negative_run: int, beta: float, delta: int) -> tuple[float, int]:
    """One accumulator step; returns (s_t, run of negative evidences ending at t).

    >>> accumulate(0.0, 0, 1.5, 5)
    (1.5, 0)
    >>> accumulate(1.5, 5, 2.0, 5)  # five negatives before t: reset, β_t not added
    (0.0, 0)
    """
    s = 0.0 if negative_run >= delta else max(s_prev + beta, 0.0)
    return s, (negative_run + 1 if beta < 0 else 0)


@dataclass(slots=True, eq=False)
class OpenAlarm:
    """Bookkeeping of the alarm in progress."""

    alarm_id: int
    trigger_index: int
    trigger_ts: float
    onset_index: int
    onset_ts: float
    last_positive_index: int  # last t in (t_a, now] with β_t > 0; t_a if none yet
    last_positive_ts: float
    peak: float  # peak accumulated evidence s
    channel_error_sum: np.ndarray  # [C] float64 squared errors summed over the alarm


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """An alarm opened (offset is None) or closed, with the channels that contribute most."""

    kind: Literal["opened", "closed"]
    stream_id: str
    alarm_id: int
    at_index: int
    at_ts: float
    trigger_index: int
    trigger_ts: float
    onset_index: int
    onset_ts: float
    offset_index: int | None
    offset_ts: float | None
    peak_evidence: float
    top_channels: tuple[str, ...]


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

    def history(self) -> np.ndarray:
        """The last min(count, L − 1) raw points in time order, [≤L−1, C]."""
        n = min(self.count, self.window_size - 1)
        idx = np.arange(self.count - n, self.count) % self.window_size
        return self.buffer[idx]


@dataclass(frozen=True, slots=True)
class _Points:
    """A batch's per-point columns as Python lists (cheaper than array scalars one by one);
    `_advance` fills the last two."""

    index: list[int]
    timestamp: list[float]
    warmup: list[bool]
    beta: list[float]
    score: list[float]
    accumulated: list[float]
    alarm: list[bool]


@dataclass(slots=True, eq=False)
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


class OnlineDetector:
    """Runs the online algorithm for many streams; one model call per batch.

    >>> import numpy as np
    >>> class Mean:  # a toy reconstructor: predicts the window mean
    ...     def reconstruct(self, w): return w.mean(axis=1)
    >>> cal = Calibration(("a",), np.zeros(1), np.ones(1), 4.0, np.linspace(0, 0.1, 100),
    ...                   AlarmParams(alpha=0.05, threshold=3.0))
    >>> det = OnlineDetector(cal, Mean())
    >>> st = det.new_state("s1")
    >>> out = det.step(st, np.full((30, 1), 0.5), np.arange(30.0))
    >>> int(out.warmup.sum()), bool(out.alarm.any())
    (23, False)
    >>> out = det.step(st, np.full((2, 1), 9.0), np.array([30.0, 31.0]))
    >>> e = out.events[0]  # the first rare point follows δ negatives: s resets, per the paper
    >>> e.kind, e.onset_index, e.trigger_index
    ('opened', 30, 31)
    """

    def __init__(
        self, calibration: Calibration, model: Reconstructor, incremental: Incremental | None = None
    ) -> None:
        self.calibration = calibration
        self.model = model
        self.incremental = incremental  # optional faster path for a few points per stream

    def new_state(self, stream_id: str, params: AlarmParams | None = None) -> StreamState:
        cal = self.calibration
        return StreamState(stream_id, cal.n_channels, cal.window_size, params=params)

    def validate(self, state: StreamState, values: np.ndarray, timestamps: np.ndarray) -> None:
        """Raise a precise PointError if any point of the batch cannot be accepted."""
        c = self.calibration.n_channels
        if values.ndim != 2 or values.shape[1] != c:
            raise ChannelCountError(
                state.stream_id, "values", values.shape, f"expected [n, {c}] channel values"
            )
        if len(timestamps) != len(values):
            raise ChannelCountError(
                state.stream_id, "timestamps", len(timestamps), f"expected {len(values)}"
            )
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            name = self.calibration.channel_names[col]
            raise NonFiniteValueError(
                state.stream_id, f"values[{row}].{name}", float(values[row, col]), "not finite"
            )
        prev = np.concatenate([[state.last_ts], timestamps[:-1]])
        late = ~(timestamps > prev)
        if late.any():
            row = int(np.argmax(late))
            raise OutOfOrderError(
                state.stream_id,
                f"timestamps[{row}]",
                float(timestamps[row]),
                f"not after the previous timestamp {float(prev[row])}",
            )

    def step(self, state: StreamState, values: np.ndarray, timestamps: np.ndarray) -> StreamResults:
        """Feed n points [n, C] with timestamps [n] to one stream."""
        return self.step_batch([(state, values, timestamps)])[0]

    def step_batch(
        self, batch: Sequence[tuple[StreamState, np.ndarray, np.ndarray]], check: bool = True
    ) -> list[StreamResults]:
        """Feed points to many streams with one model call; all-or-nothing on bad input
        (`check=False`: the caller has validated every item already).

        Everything per point is vectorised over the whole batch (scaling, checks, errors,
        p-values, evidence); only the drift level, the accumulator and the alarm rules run
        point by point, on plain Python floats (one point per stream is the common case of a
        sensor sending a reading at a time, so nothing per stream builds small arrays)."""
        cal, size, c = self.calibration, self.calibration.window_size, self.calibration.n_channels
        if check:
            for state, values, timestamps in batch:
                if not (
                    isinstance(values, np.ndarray)
                    and values.ndim == 2
                    and values.shape[1] == c
                    and len(timestamps) == len(values)
                ):
                    self.validate(state, values, timestamps)  # raises the precise error
        states = [st for st, _, _ in batch]
        counts = [len(v) for _, v, _ in batch]
        offsets = np.zeros(len(batch) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        n = int(offsets[-1])
        values = (
            np.concatenate([np.asarray(v, np.float64).reshape(-1, c) for _, v, _ in batch])
            if batch
            else np.empty((0, c))
        )  # [N, C]
        stamps = (
            np.concatenate([np.asarray(t, np.float64).reshape(-1) for _, _, t in batch])
            if batch
            else np.empty(0)
        )  # [N]
        if check and not self._all_valid(states, values, stamps, offsets):
            for item in batch:
                self.validate(*item)  # raises the first item's precise error
        scaled = cal.scale(values)  # [N, C] float32: the last row of each point's window
        recon = (
            self._full(batch, offsets)
            if self.incremental is None
            else self.incremental.reconstruct(states, scaled, offsets)
        )
        starts = np.repeat([st.count for st in states], counts)  # [N] stream count before
        index = starts + np.arange(n) - np.repeat(offsets[:-1], counts)  # [N] point index
        warmup = index < size - 1
        errors = (np.asarray(recon, np.float64) - scaled) ** 2  # [N, C]; warm-up rows unused
        contrib = cal.score_fn.contributions(errors, scaled)  # [N, C]
        score = np.where(warmup, np.nan, contrib.mean(axis=1))
        params = [st.params or cal.params for st in states]
        los, his = offsets[:-1].tolist(), offsets[1:].tolist()
        scores = score.tolist()
        shift, levels = self._shifts(states, params, scores, los, his)
        scored = ~warmup & np.isfinite(score)  # a non-finite score is no evidence, never p = 0
        p_value = np.full(n, np.nan)
        p_value[scored] = cal.reference.p_values(score[scored] * np.exp(-shift[scored]))
        alpha = np.repeat([p.alpha for p in params], counts)
        epsilon = np.repeat([p.epsilon for p in params], counts)
        with np.errstate(invalid="ignore"):
            beta = np.where(scored, np.log(alpha / (p_value + epsilon)), 0.0)
        accumulated, alarm = np.zeros(n), np.zeros(n, dtype=bool)
        point = _Points(
            index.tolist(),
            stamps.tolist(),
            warmup.tolist(),
            beta.tolist(),
            scores,
            [0.0] * n,
            [False] * n,
        )
        out = []
        for st, par, level, lo, hi in zip(states, params, levels, los, his, strict=True):
            rows = slice(lo, hi)
            res = StreamResults(
                st.stream_id,
                index[rows],
                stamps[rows],
                warmup[rows],
                score[rows],
                p_value[rows],
                beta[rows],
                accumulated[rows],
                alarm[rows],
                [],
            )
            if hi > lo:
                self._advance(st, values, point, (lo, hi), par, res.events, contrib)
                st.level = level
            out.append(res)
        accumulated[:] = point.accumulated
        alarm[:] = point.alarm
        return out

    def _all_valid(
        self, states: list[StreamState], values: np.ndarray, stamps: np.ndarray, offsets: np.ndarray
    ) -> bool:
        """Every value finite and every stream's timestamps increasing, in two array checks."""
        if not np.isfinite(values).all():
            return False
        prev = np.empty(len(stamps))  # [N] the timestamp before each point in its stream
        prev[1:] = stamps[:-1]
        firsts = offsets[:-1]
        live = firsts < offsets[1:]
        prev[firsts[live]] = [
            st.last_ts for st, ok in zip(states, live.tolist(), strict=True) if ok
        ]
        return bool((stamps > prev).all())

    def _shifts(
        self,
        states: list[StreamState],
        params: list[AlarmParams],
        scores: list[float],
        los: list[int],
        his: list[int],
    ) -> tuple[np.ndarray, list[float]]:
        """Each point's log shift [N] and each stream's drift level after its points."""
        log_median = self.calibration.reference.log_median
        shift = [0.0] * len(scores)
        levels = []
        for st, par, lo, hi in zip(states, params, los, his, strict=True):
            level = st.level
            for i in range(lo, hi):
                shift[i] = log_shift(level, st.baseline)
                level = adapt_level(level, scores[i], log_median, par.adapt_points)
            levels.append(level)
        return np.array(shift, np.float64), levels

    def rebaseline(self, state: StreamState, n_points: int) -> list[AlarmEvent]:
        """Take the stream's last `n_points` scores as its new normal: the baseline shift
        maps their median onto the calibration median, the drift level and the accumulated
        evidence restart at 0, and an open alarm closes (its event is returned)."""
        events: list[AlarmEvent] = []
        a = state.alarm
        if a is not None:
            t, ts = state.count - 1, state.last_ts
            events.append(self._event("closed", state, a, t, ts, a.channel_error_sum))
            state.alarm = None
        log_median = self.calibration.reference.log_median
        state.baseline = rebaseline_shift(state.recent(n_points), log_median)
        state.level, state.s, state.negative_run = 0.0, 0.0, 0
        if state.count:
            state.last_zero_index, state.last_zero_ts = state.count - 1, state.last_ts
        return events

    def _full(
        self, batch: Sequence[tuple[StreamState, np.ndarray, np.ndarray]], offsets: np.ndarray
    ) -> np.ndarray:
        """Reconstructions [N, C] from the full graph (zeros for warm-up rows)."""
        windows, spans = self._windows(batch)
        recon_w = self.model.reconstruct(windows) if len(windows) else None
        recon = np.zeros((int(offsets[-1]), self.calibration.n_channels), np.float32)
        for (lo, hi), end in zip(spans, offsets[1:].tolist(), strict=True):
            if hi > lo and recon_w is not None:
                recon[end - (hi - lo) : end] = recon_w[lo:hi]
        return recon

    def _windows(
        self, batch: Sequence[tuple[StreamState, np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Scaled windows [B, L, C] of every point that completes a window, and each stream's
        [lo, hi) slice of them. Windows only need raw values, never scores, so a stream's
        points in one batch are all scored together."""
        cal, size = self.calibration, self.calibration.window_size
        parts, spans, total = [], [], 0
        for state, values, _ in batch:
            seq = np.concatenate([state.history(), np.asarray(values, dtype=np.float64)])
            m = max(len(seq) - size + 1, 0)
            if m:
                view = np.lib.stride_tricks.sliding_window_view(seq, size, axis=0)  # [m, C, L]
                parts.append(cal.scale(view.transpose(0, 2, 1)))
            spans.append((total, total + m))
            total += m
        c = cal.n_channels
        windows = np.concatenate(parts) if parts else np.empty((0, size, c), np.float32)
        return windows, spans

    def _advance(
        self,
        st: StreamState,
        values: np.ndarray,
        point: _Points,
        rows: tuple[int, int],
        params: AlarmParams,
        events: list[AlarmEvent],
        contrib: np.ndarray,
    ) -> None:
        """Append rows lo:hi of the batch (one stream's points) to the stream's ring buffers
        and run the accumulator and alarm rules in order, filling `point.accumulated` and
        `point.alarm` at those rows (`contrib`: per-channel score contributions [N, C], which
        rank an alarm's channels)."""
        lo, hi = rows
        size, n, r = st.window_size, hi - lo, len(st.recent_scores)
        if n == 1:  # one reading: plain indexing, no index arrays
            st.buffer[st.count % size] = values[lo]
            st.recent_scores[st.count % r] = point.score[lo]
        else:
            keep = min(n, size)  # only the last L points can stay in the ring
            st.buffer[(st.count + np.arange(n - keep, n)) % size] = values[hi - keep : hi]
            keep = min(n, r)
            st.recent_scores[(st.count + np.arange(n - keep, n)) % r] = point.score[hi - keep : hi]
        delta, threshold = params.delta, params.threshold
        s, run = st.s, st.negative_run
        for i in range(lo, hi):
            t, ts, warm, beta = point.index[i], point.timestamp[i], point.warmup[i], point.beta[i]
            s, run = (0.0, 0) if warm else accumulate(s, run, beta, delta)
            st.s, st.negative_run = s, run
            point.accumulated[i] = s
            if st.alarm is not None or (not warm and s > threshold):
                err = None if warm or not np.isfinite(contrib[i]).all() else contrib[i]
                point.alarm[i] = self._alarm_rules(st, t, ts, beta, err, params, events)
            if s == 0.0:
                st.last_zero_index, st.last_zero_ts = t, ts
        st.count += n
        st.last_ts = point.timestamp[hi - 1]

    def _alarm_rules(
        self,
        st: StreamState,
        t: int,
        ts: float,
        beta: float,
        err: np.ndarray | None,
        params: AlarmParams,
        events: list[AlarmEvent],
    ) -> bool:
        """Open, extend or close the stream's alarm for point t; returns the alarm flag."""
        above = st.s > params.threshold
        a = st.alarm
        if a is None and above and err is not None:
            onset_index, onset_ts = st.last_zero_index, st.last_zero_ts
            if math.isnan(onset_ts):  # s was never 0 before: onset is the trigger itself
                onset_index, onset_ts = t, ts
            a = OpenAlarm(
                st.alarms_opened + 1, t, ts, onset_index, onset_ts, t, ts, st.s, err.copy()
            )
            st.alarm, st.alarms_opened = a, st.alarms_opened + 1
            events.append(self._event("opened", st, a, t, ts, err))
        elif a is not None and above and err is not None:
            a.peak = max(a.peak, st.s)
            a.channel_error_sum += err
            if beta > 0:
                a.last_positive_index, a.last_positive_ts = t, ts
        elif a is not None:
            events.append(self._event("closed", st, a, t, ts, a.channel_error_sum))
            st.alarm = None
        return bool(above)

    def _event(
        self,
        kind: Literal["opened", "closed"],
        st: StreamState,
        a: OpenAlarm,
        t: int,
        ts: float,
        channel_errors: np.ndarray,
    ) -> AlarmEvent:
        k = min(self.calibration.top_k, len(channel_errors))
        top = np.argsort(-channel_errors, kind="stable")[:k]
        closed = kind == "closed"
        return AlarmEvent(
            kind=kind,
            stream_id=st.stream_id,
            alarm_id=a.alarm_id,
            at_index=t,
            at_ts=ts,
            trigger_index=a.trigger_index,
            trigger_ts=a.trigger_ts,
            onset_index=a.onset_index,
            onset_ts=a.onset_ts,
            offset_index=a.last_positive_index if closed else None,
            offset_ts=a.last_positive_ts if closed else None,
            peak_evidence=float(a.peak),
            top_channels=tuple(self.calibration.channel_names[int(j)] for j in top),
        )
