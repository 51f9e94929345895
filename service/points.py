"""From request points to the arrays the core takes: duplicates, channel order, non-finite values.

Errors are the core's own `PointError`s with the request's field path (`points[3].values.temp`),
so a client learns exactly which value of which point was refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from detector.errors import ChannelCountError, NonFiniteValueError, OutOfOrderError
from detector.online import StreamState
from service.schemas import Point

Status = Literal["accepted", "duplicate"]


@dataclass(slots=True)
class Accepted:
    """The new points of a request: status per input point, and arrays of the accepted ones."""

    status: list[Status]
    values: np.ndarray  # [k, C] float64
    timestamps: np.ndarray  # [k] float64
    held: int  # non-finite values replaced under the hold policy


def split_duplicates(
    points: Sequence[Point], state: StreamState, recent: Sequence[float], field: str
) -> tuple[list[Status], list[int]]:
    """A point at or before the last accepted time is a duplicate if its time was accepted
    recently (a resend), and out of order otherwise."""
    seen = set(recent)
    last = state.last_ts
    status: list[Status] = []
    kept: list[int] = []
    for i, p in enumerate(points):
        t = p.time
        if t > last:
            status.append("accepted")
            kept.append(i)
            seen.add(t)
            last = t
        elif t in seen:
            status.append("duplicate")
        else:
            clock = "timestamp" if p.timestamp is not None else "seq"
            raise OutOfOrderError(
                state.stream_id,
                f"{field}[{i}].{clock}",
                t,
                f"not after the last accepted time {last} and not a recently accepted time "
                "(out of order)",
            )
    return status, kept


def _row(
    p: Point, i: int, names: tuple[str, ...], index: dict[str, int], sid: str, field: str
) -> list[float]:
    vals = p.values
    c = len(names)
    if isinstance(vals, list):
        if len(vals) != c:
            raise ChannelCountError(
                sid, f"{field}[{i}].values", len(vals), f"expected {c} values (channels {names})"
            )
        return [math.nan if v is None else float(v) for v in vals]
    row = [math.nan] * c
    for name, v in vals.items():
        j = index.get(name)
        if j is None:
            raise ChannelCountError(
                sid, f"{field}[{i}].values.{name}", v, f"unknown channel; expected {names}"
            )
        row[j] = math.nan if v is None else float(v)
    if len(vals) != c:
        missing = next(n for n in names if n not in vals)
        raise ChannelCountError(sid, f"{field}[{i}].values.{missing}", None, "missing channel")
    return row


def accept(
    points: Sequence[Point],
    state: StreamState,
    recent: Sequence[float],
    names: tuple[str, ...],
    policy: Literal["reject", "hold"],
    field: str = "points",
) -> Accepted:
    """Check and convert a stream's points; raise a PointError naming the first bad field."""
    sid = state.stream_id
    status, kept = split_duplicates(points, state, recent, field)
    index = {n: j for j, n in enumerate(names)}
    rows = [_row(points[i], i, names, index, sid, field) for i in kept]
    values = np.array(rows, dtype=np.float64).reshape(len(kept), len(names))
    timestamps = np.array([points[i].time for i in kept], dtype=np.float64)
    held = 0
    bad = ~np.isfinite(values)
    if bad.any():
        if policy == "reject":
            r, j = map(int, np.argwhere(bad)[0])
            raise NonFiniteValueError(
                sid,
                f"{field}[{kept[r]}].values.{names[j]}",
                float(values[r, j]),
                "not a finite number (non-finite policy: reject)",
            )
        previous = state.buffer[(state.count - 1) % state.window_size] if state.count else None
        for row in np.flatnonzero(bad.any(axis=1)).tolist():
            before = values[row - 1] if row > 0 else previous
            cols = np.flatnonzero(bad[row])
            if before is None:
                j = int(cols[0])
                raise NonFiniteValueError(
                    sid,
                    f"{field}[{kept[row]}].values.{names[j]}",
                    float(values[row, j]),
                    "not a finite number, and the stream has no previous value to hold",
                )
            values[row, cols] = before[cols]
            held += len(cols)
    return Accepted(status, values, timestamps, held)
