"""A training job's table: the recorded history of its streams, alarm spans left out.

Each stream's history (service.ingest.history: the raw-point list committed with its state)
is read in chunks with the loop let in between, filtered to the time range, and the points
inside recorded alarms — closed alarms from onset to offset, an open one from its onset on —
are left out unless the request includes them: a model trained on its own faults would learn
them as normal. Streams are concatenated in the order given; every stream must be bound to
models of the same channels (the table's columns).
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from service.auth import Principal
from service.clustering.episodes import unpack_points
from service.deps import Services
from service.errors import InvalidPoint
from service.ingest.history import first_at_or_after
from service.ingest.streams import not_found
from service.training.schemas import TrainingJobCreate

MIN_TRAINING_POINTS = 200  # below this `tad train` cannot hold out a validation period
MAX_TRAINING_POINTS = 2_000_000
READ_CHUNK = 10_000  # history items per store read


@dataclass(frozen=True, slots=True)
class TrainingTable:
    values: np.ndarray  # [n, C] float64
    channels: tuple[str, ...]
    summary: dict[str, Any]  # per stream: points read, used, left out as alarms

    def npz(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, allow_pickle=False, X=self.values)
        return buf.getvalue()


def decode_table(data: bytes) -> np.ndarray:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return np.asarray(npz["X"], dtype=np.float64)


async def training_table(
    services: Services, req: TrainingJobCreate, who: Principal
) -> TrainingTable:
    """The job's [n, C] table from its streams' histories; 4xx naming the stream or range."""
    parts, per_stream, channels, bound = [], [], None, []
    for i, sid in enumerate(req.streams):  # first every stream's check and range, no reads
        field = f"streams[{i}]"
        who.require_stream(sid, field)
        (stored,) = await services.store.get_many([sid])
        if stored is None:
            raise not_found(sid)
        stream, model = services.binder.existing(stored)
        if channels is None:
            channels = model.channels
        elif model.channels != channels:
            raise InvalidPoint(
                f"stream {sid!r} has channels {list(model.channels)}, streams[0] has "
                f"{list(channels)}: one model is trained on one set of channels",
                field=field,
                kind="invalid",
            )
        lo, hi = await _positions(services, sid, len(model.channels), req.from_ts, req.to_ts)
        bound.append((sid, stream, model, lo, hi))
    total = sum(hi - lo for *_, lo, hi in bound)
    if total > MAX_TRAINING_POINTS:  # refused before anything is read
        raise InvalidPoint(
            f"the streams hold {total:,} recorded points in this range, more than "
            f"{MAX_TRAINING_POINTS:,}: narrow from/to or name fewer streams",
            field="streams",
            kind="invalid",
        )
    for sid, stream, model, lo, hi in bound:
        rows = await _history(services, sid, len(model.channels), lo, hi)
        in_range = np.ones(len(rows), bool)
        if req.from_ts is not None:
            in_range &= rows[:, 1] >= req.from_ts
        if req.to_ts is not None:
            in_range &= rows[:, 1] < req.to_ts
        alarmed = np.zeros(len(rows), bool)
        if not req.include_alarms:
            open_onset = None if stream.state.alarm is None else stream.state.alarm.onset_index
            for onset, offset in await _alarm_spans(services, sid, open_onset):
                alarmed |= (rows[:, 0] >= onset) & (rows[:, 0] <= offset)
        used = rows[in_range & ~alarmed]
        parts.append(used[:, 2:])
        per_stream.append(
            {
                "stream_id": sid,
                "model": model.name,
                "in_range": int(in_range.sum()),
                "left_out_as_alarms": int((in_range & alarmed).sum()),
                "used": len(used),
                "first_index": int(used[0, 0]) if len(used) else None,
                "last_index": int(used[-1, 0]) if len(used) else None,
            }
        )
    if channels is None:  # the schema asks for at least one stream
        raise InvalidPoint("name at least one stream", field="streams", kind="invalid")
    values = np.concatenate(parts) if parts else np.empty((0, len(channels)))
    n = len(values)
    if n < MIN_TRAINING_POINTS or n > MAX_TRAINING_POINTS:
        raise InvalidPoint(
            f"the streams' recorded history holds {n} usable points in this range "
            f"({MIN_TRAINING_POINTS}–{MAX_TRAINING_POINTS:,} are needed); record more "
            "(TAD_HISTORY_POINTS) or widen from/to",
            field="streams",
            kind="invalid",
        )
    return TrainingTable(values, channels, {"streams": per_stream, "points": n})


async def _positions(
    services: Services, sid: str, c: int, start_ts: float | None, end_ts: float | None
) -> tuple[int, int]:
    """List positions [lo, hi) of the stream's history inside the time range (bisection)."""
    n = await services.store.raw_length(sid)
    lo = 0 if start_ts is None else await first_at_or_after(services, sid, c, n, start_ts)
    hi = n if end_ts is None else await first_at_or_after(services, sid, c, n, end_ts)
    return lo, max(lo, hi)


async def _history(services: Services, sid: str, c: int, lo: int, hi: int) -> np.ndarray:
    """History rows [n, 2 + C] at positions lo..hi − 1, read a chunk at a time."""
    chunks = []
    for at in range(lo, hi, READ_CHUNK):
        got = await services.store.raw_range(sid, at, min(at + READ_CHUNK, hi) - 1)
        chunks.append(unpack_points(got, c))
        await asyncio.sleep(0)
    rows = np.concatenate(chunks) if chunks else np.empty((0, 2 + c))
    _, first = np.unique(rows[:, 0], return_index=True)  # a trim between reads may repeat one
    return rows[np.sort(first)]


async def _alarm_spans(
    services: Services, sid: str, open_onset: int | None
) -> list[tuple[float, float]]:
    """[onset, offset] index spans of the stream's recorded alarms (an open one: to ∞)."""
    spans: list[tuple[float, float]] = []
    for raw in await services.store.alarm_history(sid):
        e = orjson.loads(raw)
        if e.get("kind") == "closed" and e.get("offset_index") is not None:
            spans.append((float(e["onset_index"]), float(e["offset_index"])))
    if open_onset is not None:
        spans.append((float(open_onset), float("inf")))
    return spans
