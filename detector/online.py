"""The whole online CCM-TAD algorithm for one stream: window → score → evidence → alarm.

Per point x_t (paper, Section 3.4, with the project's score and p-value; docs/ccm_tad.md):
  window  X = the last L raw points, min-max scaled and clipped        [L, C]
  score   g_t = mean_c contribution_c (detector.score: the paper's MSE, the hybrid of
          per-channel normalised model error and PCA residual, the residual alone, or the
          distance from the training mean — the trainer picks one per entity, label-free)
  median  g̃_t = lower median of the finite g over the last m points (detector.smoothing)
  shift   g'_t = g̃_t · exp(−(baseline + max(level_{t−1}, 0)))   (detector.adaptation)
  p-value p_t = share of the calibration scores above g'_t, Pareto tail beyond (detector.pvalue)
  evidence β_t = log(α / (p_t + ε)); a non-finite score is no evidence (β = 0)
  accumulated s_t = 0 if β_{t−1..t−δ} were all negative, else max(s_{t−1} + β_t, 0)
  alarm   while s_t > h; opened at the trigger t_a with onset t_a* = last t < t_a with s_t = 0;
          closed when s falls back to ≤ h, with offset t_b* = last t in (t_a, t_b] with β_t > 0.
  re-baseline  at t = t_a + K (K = rebaseline_after_points, 0: never) an alarm still open
          closes and the stream takes its last min(K, 512) scores as its new normal, as an
          operator's re-baseline does: a regime the calibration never saw is one alarm of K
          points, not an alarm for the rest of time (issue 23: on MSL, 5 of 27 channels whose
          test period starts in another regime spent more than half of it in alarm).

Warm-up points (fewer than L points seen) have no score; they count as s = 0, β = 0.
The model call is a `Reconstructor`, so this module imports no runtime, web or store code.
The accumulator and alarm rules live in `detector.alarm`, the per-stream state in
`detector.stream`, the running median in `detector.smoothing`; this module is the step that
drives them (one algorithm, one file, ~460 lines: its batch path, its one-point fast path and
the re-baseline that re-scores the rest of a batch must stay side by side to stay identical).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from detector.adaptation import adapt_level, log_shift, rebaseline_shift
from detector.alarm import AlarmEvent, AlarmParams, accumulate, alarm_rules, close_alarm
from detector.calibration import Calibration
from detector.errors import ChannelCountError, NonFiniteValueError, OutOfOrderError
from detector.offline import evidence_from
from detector.smoothing import median_of_one, median_scores
from detector.stream import StreamResults, StreamState


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
        values = np.ascontiguousarray(  # row-major whatever the caller's layout: numpy's
            # reductions round by memory order, and a column-major batch (the service parses
            # named channels column by column) scored 1 ulp off a row-major one
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
        contrib = cal.score_fn.contributions(errors, cal.unclipped(values))  # [N, C]
        score = np.where(warmup, np.nan, contrib.mean(axis=1))
        params = [st.params or cal.params for st in states]
        los, his = offsets[:-1].tolist(), offsets[1:].tolist()
        scores = score.tolist()
        smooth = self._medians(states, params, score, los, his)  # [N] g̃
        shift, levels = self._shifts(states, params, smooth.tolist(), los, his)
        scored = ~warmup & np.isfinite(smooth)  # a non-finite score is no evidence, never p = 0
        p_value = np.full(n, np.nan)
        p_value[scored] = cal.reference.p_values(smooth[scored] * np.exp(-shift[scored]))
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
                stream_id=st.stream_id,
                index=index[rows],
                timestamp=stamps[rows],
                warmup=warmup[rows],
                score=score[rows],
                p_value=p_value[rows],
                evidence=beta[rows],
                accumulated=accumulated[rows],
                alarm=alarm[rows],
                events=[],
            )
            if hi > lo:
                cut = self._advance(st, point, (lo, hi), par, res.events, contrib)
                while cut is not None:  # re-baselined at row cut: the rows after it anew
                    level = self._rescore(st, par, smooth, (cut + 1, hi), p_value, beta, point)
                    cut = self._advance(st, point, (cut + 1, hi), par, res.events, contrib)
                st.level = level
                self._keep(st, values, point, (lo, hi))
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
            centre = log_median + st.baseline  # the level is drift beyond the re-baseline
            for i in range(lo, hi):
                shift[i] = log_shift(level, st.baseline)
                level = adapt_level(level, scores[i], centre, par.adapt_points)
            levels.append(level)
        return np.array(shift, np.float64), levels

    @staticmethod
    def _medians(
        states: list[StreamState],
        params: list[AlarmParams],
        score: np.ndarray,
        los: list[int],
        his: list[int],
    ) -> np.ndarray:
        """g̃ [N]: each stream's running median of its scores (its ring's before the batch)."""
        if all(p.median_points <= 1 for p in params):
            return score
        out = score.copy()
        for st, par, lo, hi in zip(states, params, los, his, strict=True):
            m = par.median_points
            if hi - lo == 1 and m > 1:  # one reading: plain floats
                out[lo] = median_of_one(st.recent_list(m - 1), float(score[lo]))
            elif hi > lo and m > 1:
                out[lo:hi] = median_scores(st.recent(m - 1), score[lo:hi], m)
        return out

    def _rescore(
        self,
        st: StreamState,
        par: AlarmParams,
        smooth: np.ndarray,
        rows: tuple[int, int],
        p_value: np.ndarray,
        beta: np.ndarray,
        point: _Points,
    ) -> float:
        """p-values and evidence of rows lo:hi again from the stream's (new) level and
        baseline, written in place; returns the drift level after them."""
        lo, hi = rows
        g = smooth[lo:hi]
        ok = np.isfinite(g) & ~np.asarray(point.warmup[lo:hi], bool)
        ref = self.calibration.reference
        p, b, levels = evidence_from(g, ok, ref, par, st.level, st.baseline)
        p_value[lo:hi], beta[lo:hi] = p, b
        point.beta[lo:hi] = b.tolist()
        return levels[-1] if levels else st.level

    def rebaseline(self, state: StreamState, n_points: int) -> list[AlarmEvent]:
        """Take the stream's last `n_points` scores as its new normal: the baseline shift
        maps their median onto the calibration median, the drift level and the accumulated
        evidence restart at 0, and an open alarm closes (its event is returned)."""
        events: list[AlarmEvent] = []
        if state.alarm is not None:
            cal = self.calibration
            t, ts = state.count - 1, state.last_ts
            events.append(close_alarm(state, t, ts, cal.channel_names, cal.top_k, "operator"))
        log_median = self.calibration.reference.log_median
        state.baseline = rebaseline_shift(state.recent(n_points), log_median)
        state.level, state.s, state.negative_run = 0.0, 0.0, 0
        if state.count:
            state.last_zero_index, state.last_zero_ts = state.count - 1, state.last_ts
        return events

    def adopt(
        self, old: StreamState, previous: OnlineDetector
    ) -> tuple[StreamState, list[AlarmEvent]]:
        """The stream `old`, kept so far by `previous`, continued on this detector's model
        (the same channels and window): its raw window, point count, clock and alarm numbering
        carry over, so it scores from its next point without a new warm-up. Its evidence,
        drift level, baseline, per-stream α/h and recent scores restart (the previous
        model's scores do not compare with this one's), and an open alarm closes: its event,
        ranked by the previous model, is returned."""
        cal = self.calibration
        if old.n_channels != cal.n_channels or old.window_size != cal.window_size:
            raise ChannelCountError(
                old.stream_id,
                "model",
                f"{old.n_channels} channels, window {old.window_size}",
                f"expected {cal.n_channels} channels, window {cal.window_size}",
            )
        events: list[AlarmEvent] = []
        if old.alarm is not None:
            pc = previous.calibration
            t, ts = old.count - 1, old.last_ts
            events.append(close_alarm(old, t, ts, pc.channel_names, pc.top_k, "model_switch"))
        new = self.new_state(old.stream_id)
        new.buffer[:] = old.buffer
        new.count, new.last_ts, new.alarms_opened = old.count, old.last_ts, old.alarms_opened
        if old.count:
            new.last_zero_index, new.last_zero_ts = old.count - 1, old.last_ts
        return new, events

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
        point: _Points,
        rows: tuple[int, int],
        params: AlarmParams,
        events: list[AlarmEvent],
        contrib: np.ndarray,
    ) -> int | None:
        """Run the accumulator and alarm rules over rows lo:hi of the batch (one stream's
        points) in order, filling `point.accumulated` and `point.alarm` at those rows
        (`contrib`: per-channel score contributions [N, C], which rank an alarm's channels).
        Returns the row where the stream re-baselined itself (the rows after it need their
        evidence again), or None."""
        lo, hi = rows
        delta, threshold = params.delta, params.threshold
        after = params.rebaseline_after_points
        names, top_k = self.calibration.channel_names, self.calibration.top_k
        s, run = st.s, st.negative_run
        for i in range(lo, hi):
            t, ts, warm, beta = point.index[i], point.timestamp[i], point.warmup[i], point.beta[i]
            s, run = (0.0, 0) if warm else accumulate(s, run, beta, delta)
            cut = after > 0 and st.alarm is not None and t - st.alarm.trigger_index >= after
            if cut:
                s, run = 0.0, 0  # the alarm closes below, the evidence restarts
            st.s, st.negative_run = s, run
            point.accumulated[i] = s
            if cut and st.alarm is not None:
                events.append(close_alarm(st, t, ts, names, top_k, "rebaseline"))
            elif st.alarm is not None or (not warm and s > threshold):
                err = None if warm or not np.isfinite(contrib[i]).all() else contrib[i]
                point.alarm[i] = alarm_rules(st, t, ts, beta, err, params, events, names, top_k)
            if s == 0.0:
                st.last_zero_index, st.last_zero_ts = t, ts
            if cut:
                recent = self._recent_through(st, point, lo, i, after)
                st.baseline = rebaseline_shift(recent, self.calibration.reference.log_median)
                st.level = 0.0
                return i
        return None

    @staticmethod
    def _recent_through(
        st: StreamState, point: _Points, lo: int, i: int, n_points: int
    ) -> np.ndarray:
        """The stream's last min(n, R) raw scores up to batch row i (rows from lo are this
        batch's), float32-rounded like the ring, so batching never changes them."""
        n = min(n_points, len(st.recent_scores))
        mine = np.asarray(point.score[max(lo, i + 1 - n) : i + 1], np.float32).astype(np.float64)
        before = st.recent(n - len(mine)) if n > len(mine) else np.empty(0)
        return np.concatenate([before, mine])

    @staticmethod
    def _keep(st: StreamState, values: np.ndarray, point: _Points, rows: tuple[int, int]) -> None:
        """Append rows lo:hi (one stream's points) to the stream's raw window and score ring."""
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
        st.count += n
        st.last_ts = point.timestamp[hi - 1]
