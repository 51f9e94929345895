"""Alarm episodes: the raw points of each alarm from onset to offset, kept per stream.

Why only the points since the accumulator was last zero: an alarm's onset is the last point
before its trigger where the accumulated evidence s was 0 (`detector.online`), so no episode
that closes later can start before the stream's current last-zero point. The rolling raw history
therefore holds only the points since then — one point while the stream is quiet — capped at
TAD_EPISODE_HISTORY_POINTS (an episode whose onset fell off that cap is marked `truncated`).
The history and the closed episodes are written in the same atomic commit as the stream state,
so an acknowledged alarm close always has its episode, and a refused commit leaves neither.

The same list is the stream's *recorded history* when TAD_HISTORY_POINTS is set: it then keeps
at least the last that many accepted points (whichever is more), exported by
`GET /v1/streams/{id}/points` (service.ingest.history). One list, one writer: the episodes
and the export read the same points, committed with the state that scored them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from detector.alarm import AlarmEvent
from detector.stream import StreamResults
from service.ingest.streams import Stream
from service.registry import LoadedModel
from service.settings import Settings
from service.state.store import StateStore


def pack_points(index: np.ndarray, ts: np.ndarray, values: np.ndarray) -> list[bytes]:
    """One bytes item per point: float64 [index, timestamp, v_1 … v_C]."""
    if len(index) == 1:  # a reading at a time: the common case, without the 2-D staging
        return [np.concatenate((index, ts, values[0]), dtype=np.float64).tobytes()]
    rows = np.empty((len(index), 2 + values.shape[1]), dtype=np.float64)
    rows[:, 0], rows[:, 1], rows[:, 2:] = index, ts, values
    return [r.tobytes() for r in rows]


def unpack_points(raw: Sequence[bytes], n_channels: int) -> np.ndarray:
    """[n, 2 + C] rows from `pack_points` items; items of another width are skipped."""
    width = (2 + n_channels) * 8
    rows = [np.frombuffer(r, dtype=np.float64) for r in raw if len(r) == width]
    if not rows:
        return np.empty((0, 2 + n_channels))
    return np.stack(rows)


def resample(values: np.ndarray, length: int) -> np.ndarray:
    """Linear resampling of [n, C] onto `length` points spread evenly over the same span."""
    n = len(values)
    if n == length:
        return values.astype(np.float64)
    src = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    grid = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(grid, src, values[:, j]) for j in range(values.shape[1])], axis=1)


def episode_dict(
    event: AlarmEvent, model: LoadedModel, rows: np.ndarray, max_points: int
) -> dict[str, Any]:
    """The stored episode of a closed alarm; `rows` are the [index, ts, values…] available."""
    assert event.offset_index is not None and event.offset_ts is not None
    lo, hi = event.onset_index, event.offset_index
    sel = rows[(rows[:, 0] >= lo) & (rows[:, 0] <= hi)]
    sel = sel[np.argsort(sel[:, 0], kind="stable")]
    n_points = hi - lo + 1
    resampled = len(sel) > max_points
    if resampled:
        sel = resample(sel, max_points)
    return {
        "stream_id": event.stream_id,
        "model": model.name,
        "model_version": model.version,
        "channels": list(model.channels),
        "alarm_id": event.alarm_id,
        "onset_index": lo,
        "onset_ts": float(event.onset_ts),
        "offset_index": hi,
        "offset_ts": float(event.offset_ts),
        "closed_ts": float(event.at_ts),
        "peak_evidence": float(event.peak_evidence),
        "top_channels": list(event.top_channels),
        "n_points": n_points,
        "stored_points": len(sel),
        "truncated": bool(len(sel) == 0 or sel[0, 0] > lo),
        "resampled": resampled,
        "timestamps": sel[:, 1].tolist(),
        "values": sel[:, 2:].tolist(),
    }


class EpisodeRecorder:
    """Adds the raw-history and closed-episode parts to a stream's commit after scoring."""

    def __init__(self, settings: Settings, store: StateStore) -> None:
        self.cap = settings.episode_history_points
        self.history = settings.history_points
        self.max_points = settings.episode_max_points
        self.store = store

    def attach_now(
        self, stream: Stream, model: LoadedModel, values: np.ndarray, res: StreamResults
    ) -> dict[str, Any] | None:
        """The raw-history fields of the stream's `StreamUpdate` when no alarm closed in `res`
        (no store read needed); None when one did (then `attach`).

        `stream.state` has already advanced over the accepted points `values` [k, C]."""
        if self.cap == 0 and self.history == 0:
            return {"raw_keep": 0}  # off: drop any old history
        if any(e.kind == "closed" for e in res.events):
            return None
        keep = self._keep(stream)
        lo = max(0, len(values) - keep)  # only the points that stay need packing
        raw = pack_points(res.index[lo:], res.timestamp[lo:], values[lo:])
        return {"raw": tuple(raw), "raw_keep": keep}

    def _keep(self, stream: Stream) -> int:
        """Points of raw history to keep: those an alarm closing later may need (up to the
        episode cap), or the recorded history's length, whichever is more."""
        st = stream.state
        keep_from = st.last_zero_index
        if st.alarm is not None:
            keep_from = min(keep_from, st.alarm.onset_index)
        episode = min(self.cap, st.count - keep_from) if self.cap else 0
        return max(1, episode, min(self.history, st.count))

    async def attach(
        self,
        stream: Stream,
        model: LoadedModel,
        values: np.ndarray,
        res: StreamResults,
    ) -> dict[str, Any]:
        """The raw-history and episode fields of the stream's `StreamUpdate`: new raw points,
        the history to keep and any closed episodes.

        `stream.state` has already advanced over the accepted points `values` [k, C]."""
        now = self.attach_now(stream, model, values, res)
        if now is not None:
            return now
        keep = self._keep(stream)
        closed = [e for e in res.events if e.kind == "closed"]
        new = pack_points(res.index, res.timestamp, values)
        c = len(model.channels)
        before = stream.state.count - len(values)  # points the stored history can hold
        need = before - min(e.onset_index for e in closed)  # only the closed episodes' part
        stored = (
            unpack_points(await self.store.raw_range(stream.stream_id, -need, -1), c)
            if need > 0
            else unpack_points([], c)
        )
        rows = np.concatenate([stored, unpack_points(new, c)])
        episodes = tuple(
            orjson.dumps(episode_dict(e, model, rows, self.max_points)) for e in closed
        )
        return {"raw": tuple(new[-keep:]), "raw_keep": keep, "episodes": episodes}
