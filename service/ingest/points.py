"""From request points to the arrays the core takes: duplicates, channel order, non-finite values.

Errors are the core's own `PointError`s with the request's field path (`points[3].values.temp`),
so a client learns exactly which value of which point was refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from detector.errors import ChannelCountError, NonFiniteValueError, OutOfOrderError
from detector.stream import StreamState
from service.ingest.wire import PointColumns

Status = Literal["accepted", "duplicate"]


@dataclass(slots=True)
class Accepted:
    """The new points of a request: status per input point, and arrays of the accepted ones."""

    status: list[Status]
    values: np.ndarray  # [k, C] float64
    timestamps: np.ndarray  # [k] float64
    held: int  # non-finite values replaced under the hold policy


def split_duplicates(
    cols: PointColumns, state: StreamState, recent: np.ndarray, field: str
) -> tuple[list[Status], list[int] | None]:
    """A point at or before the last accepted time is a duplicate if its time was accepted
    recently (a resend), and out of order otherwise. `kept` is None when all are new."""
    times = cols.times
    n = len(times)
    if n and times[0] > state.last_ts and (n == 1 or bool(np.all(times[1:] > times[:-1]))):
        return ["accepted"] * len(times), None  # the common case, checked in bulk
    seen = set(recent.tolist())
    last = state.last_ts
    status: list[Status] = []
    kept: list[int] = []
    for i, t in enumerate(times.tolist()):
        if t > last:
            status.append("accepted")
            kept.append(i)
            seen.add(t)
            last = t
        elif t in seen:
            status.append("duplicate")
        else:
            raise OutOfOrderError(
                state.stream_id,
                f"{field}[{i}].{cols.clock(i)}",
                t,
                f"not after the last accepted time {last} and not a recently accepted time "
                "(out of order)",
            )
    return status, kept


def _row(
    vals: list[float | None] | dict[str, float | None],
    i: int,
    names: tuple[str, ...],
    index: dict[str, int],
    sid: str,
    field: str,
) -> list[float]:
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


def _values(
    cols: PointColumns, kept: list[int] | None, names: tuple[str, ...], sid: str, field: str
) -> np.ndarray:
    """[k, C] float64 values of the kept points; null is NaN."""
    c = len(names)
    if cols.values is not None:
        return cols.values if kept is None else cols.values[kept]
    rows = cols.rows or []
    chosen = rows if kept is None else [rows[i] for i in kept]
    if all(type(r) is list and len(r) == c for r in chosen):
        return np.array(chosen, dtype=np.float64).reshape(len(chosen), c)  # null → NaN
    index = {n: j for j, n in enumerate(names)}
    order = range(len(rows)) if kept is None else kept
    out = [_row(rows[i], i, names, index, sid, field) for i in order]
    return np.array(out, dtype=np.float64).reshape(len(out), c)


def accept(
    cols: PointColumns,
    state: StreamState,
    recent: np.ndarray,
    names: tuple[str, ...],
    policy: Literal["reject", "hold"],
    field: str = "points",
) -> Accepted:
    """Check and convert a stream's points; raise a PointError naming the first bad field."""
    sid = state.stream_id
    status, kept = split_duplicates(cols, state, recent, field)
    values = _values(cols, kept, names, sid, field)
    timestamps = cols.times if kept is None else cols.times[kept]
    positions = kept if kept is not None else range(len(cols))
    held = 0
    if not np.isfinite(values).all():
        bad = ~np.isfinite(values)
        if policy == "reject":
            r, j = map(int, np.argwhere(bad)[0])
            raise NonFiniteValueError(
                sid,
                f"{field}[{positions[r]}].values.{names[j]}",
                float(values[r, j]),
                "not a finite number (non-finite policy: reject)",
            )
        values = values.copy()
        previous = state.last_point()
        for row in np.flatnonzero(bad.any(axis=1)).tolist():
            before = values[row - 1] if row > 0 else previous
            cols_bad = np.flatnonzero(bad[row])
            if before is None:
                j = int(cols_bad[0])
                raise NonFiniteValueError(
                    sid,
                    f"{field}[{positions[row]}].values.{names[j]}",
                    float(values[row, j]),
                    "not a finite number, and the stream has no previous value to hold",
                )
            values[row, cols_bad] = before[cols_bad]
            held += len(cols_bad)
    return Accepted(status, values, timestamps, held)
