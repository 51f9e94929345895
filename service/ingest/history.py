"""A stream's recorded history, a page at a time: `GET /v1/streams/{id}/points` (issue 26).

The history is the stream's raw-point list in the store (service.clustering.episodes writes it
in the same commit as the state that scored the points; TAD_HISTORY_POINTS sets how many it
keeps). Its items are consecutive accepted points, oldest first, each carrying its own index
and timestamp, so a page is found by position and then checked by index: a commit of another
replica that trims the list between two reads shifts positions, never what a page returns
(rows are filtered by index and time, so a page may come out shorter, never wrong).

Cursors are point indices: `next_cursor` is the index of the first point the next page starts
at. A `from` timestamp is found by binary search over positions (about log₂ n one-item reads).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.clustering.episodes import unpack_points
from service.deps import Services
from service.errors import InvalidPoint
from service.ingest.streams import not_found

MAX_PAGE_POINTS = 10_000
_SEARCH_MARGIN = 64  # positions read before a searched start: absorbs trims between reads


@dataclass(frozen=True, slots=True)
class HistoryPage:
    stream_id: str
    model: str
    channels: tuple[str, ...]
    rows: np.ndarray  # [n, 2 + C] float64: index, timestamp, values
    next_cursor: str | None
    retained_from_index: int | None  # the oldest point still kept; None: none kept

    def as_json(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "model": self.model,
            "channels": list(self.channels),
            "points": [
                {"index": int(r[0]), "timestamp": float(r[1]), "values": r[2:].tolist()}
                for r in self.rows
            ],
            "next_cursor": self.next_cursor,
            "retained_from_index": self.retained_from_index,
        }

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["index", "timestamp", *self.channels])
        for r in self.rows:
            writer.writerow([int(r[0]), repr(float(r[1])), *map(repr, r[2:].tolist())])
        return out.getvalue()


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise InvalidPoint(
            f"cursor {cursor!r} is not one this service handed out", field="cursor", kind="invalid"
        )
    return int(cursor)


async def history_page(
    services: Services,
    stream_id: str,
    start_ts: float | None,
    end_ts: float | None,
    cursor: str | None,
    limit: int,
) -> HistoryPage:
    """Points of the stream with start_ts ≤ timestamp < end_ts (either open), from the cursor's
    index on, at most `limit` of them."""
    after = parse_cursor(cursor)
    store = services.store
    (stored,) = await store.get_many([stream_id])
    if stored is None:
        raise not_found(stream_id)
    stream, model = services.binder.existing(stored)
    c = len(model.channels)
    n = await store.raw_length(stream_id)
    first = unpack_points(await store.raw_range(stream_id, 0, 0), c) if n else None
    if first is None or not len(first):
        return HistoryPage(stream_id, model.name, model.channels, np.empty((0, 2 + c)), None, None)
    oldest = int(first[0, 0])
    pos = 0 if after is None else max(0, after - oldest)
    if start_ts is not None:
        pos = max(pos, await first_at_or_after(services, stream_id, c, n, start_ts))
    pos = max(0, pos - _SEARCH_MARGIN)  # a trim between reads moves items to lower positions
    rows = unpack_points(await store.raw_range(stream_id, pos, pos + limit + 2 * _SEARCH_MARGIN), c)
    keep = np.ones(len(rows), bool)
    if after is not None:
        keep &= rows[:, 0] >= after
    if start_ts is not None:
        keep &= rows[:, 1] >= start_ts
    rows = rows[keep]
    ended = False  # the page reached end_ts
    if end_ts is not None:
        before_end = rows[:, 1] < end_ts
        ended = not before_end.all()
        rows = rows[before_end]
    newest = stream.state.count - 1  # the list's last item is the newest accepted point
    more = len(rows) > limit or (not ended and len(rows) > 0 and int(rows[-1, 0]) < newest)
    rows = rows[:limit]
    nxt = str(int(rows[-1, 0]) + 1) if more else None
    return HistoryPage(stream_id, model.name, model.channels, rows, nxt, oldest)


async def first_at_or_after(
    services: Services, stream_id: str, c: int, n: int, start_ts: float
) -> int:
    """Position of the first point with timestamp ≥ start_ts (n if none), by bisection."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        row = unpack_points(await services.store.raw_range(stream_id, mid, mid), c)
        ts = float(row[0, 1]) if len(row) else math.inf
        if ts < start_ts:
            lo = mid + 1
        else:
            hi = mid
    return lo
