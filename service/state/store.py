"""Where stream state lives: the `StateStore` protocol and the in-memory store.

A store is deliberately dumb: it keeps opaque bytes per stream (service metadata and the
`encode_state` bytes) behind a version counter, and commits a request's updates all-or-nothing
with optimistic concurrency. Everything that understands the bytes lives in
`service.ingest.streams`.
An update carries a `StreamRecord` that encodes itself when asked: Redis asks on every commit;
the in-memory store keeps the record object itself (one copy of each stream in the process, the
same object the ingest path's cache holds) and encodes only for readers, so both stores answer
`get_many` with the same bytes.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

GAUGE_CHUNK = 250  # /metrics entries per chunk (bench/metrics_scrape.py)
RAW_DEQUE_FROM = 1024  # raw histories longer than this live in a deque (MemoryStore)


class StoreUnavailable(RuntimeError):
    """The store could not be reached; the operation did not happen, or (`in_transit`: a
    timeout or a dropped connection) whether it happened is unknown."""

    def __init__(self, message: str, in_transit: bool = False) -> None:
        super().__init__(message)
        self.in_transit = in_transit


@dataclass(frozen=True, slots=True)
class StoredStream:
    """One stream as stored: version counter, metadata JSON and state bytes."""

    stream_id: str
    version: int
    meta: bytes
    state: bytes


class StreamRecord(Protocol):
    """A stream's contents, encoded on demand."""

    def meta_bytes(self) -> bytes: ...

    def state_bytes(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record that is bytes already."""

    meta: bytes
    state: bytes

    def meta_bytes(self) -> bytes:
        return self.meta

    def state_bytes(self) -> bytes:
        return self.state


@dataclass(frozen=True, slots=True)
class StreamUpdate:
    """New contents for one stream, valid only if its version is still `expected_version`."""

    stream_id: str
    expected_version: int  # 0: the stream must not exist yet
    record: StreamRecord
    events: tuple[bytes, ...] = ()  # alarm events (JSON) to append to the capped history
    open_alarm: bytes | None = None  # JSON of the alarm open after this update, if any
    gauge: bytes = b""  # JSON {"model", "s", "alarm"} exported per stream on /metrics
    raw: tuple[bytes, ...] = ()  # raw points to append to the episode history (oldest first)
    raw_keep: int = -1  # then keep the newest raw_keep points; -1: leave the history alone
    episodes: tuple[bytes, ...] = ()  # closed alarm episodes (JSON) for the capped list


class StateStore(Protocol):
    """Stream state, alarm history and open-alarm index, shared by every service process."""

    kind: str

    async def get_many(self, stream_ids: Sequence[str]) -> list[StoredStream | None]: ...

    async def commit(self, updates: Sequence[StreamUpdate]) -> list[str]:
        """Apply every update or none; return the ids whose version changed meanwhile."""
        ...

    async def commit_many(self, groups: Sequence[Sequence[StreamUpdate]]) -> list[list[str]]:
        """`commit` for each group (each all-or-nothing on its own), in one round trip."""
        ...

    async def delete(self, stream_id: str) -> bool: ...

    async def list_streams(self) -> list[str]: ...

    async def alarm_history(self, stream_id: str) -> list[bytes]: ...

    async def open_alarms(self) -> list[bytes]: ...

    async def stream_page(
        self, cursor: str | None, limit: int, prefix: str = ""
    ) -> tuple[list[str], str | None]:
        """About `limit` stream ids starting with `prefix` from `cursor` (None: the start) and
        the cursor of the next page (None: the last page)."""
        ...

    async def open_alarm_page(
        self, cursor: str | None, limit: int, prefix: str = ""
    ) -> tuple[list[bytes], str | None]:
        """About `limit` open alarms of streams starting with `prefix` from `cursor`, and the
        next page's cursor (None: the last page)."""
        ...

    def gauge_chunks(self) -> AsyncIterator[list[tuple[str, bytes]]]:
        """Every stream's /metrics entry, GAUGE_CHUNK or so at a time, each stream once: the
        reader lets the event loop in between chunks, and nothing holds all 100,000 at once
        (freeing such a dict in one go alone stalled the loop ~10 ms)."""
        ...

    async def raw_history(self, stream_id: str) -> list[bytes]: ...

    async def raw_range(self, stream_id: str, start: int, stop: int) -> list[bytes]:
        """Items start..stop of the raw history, oldest first, both ends included, negative
        positions from the end (Redis LRANGE's rules)."""
        ...

    async def raw_length(self, stream_id: str) -> int: ...

    async def episodes(self, stream_id: str) -> list[bytes]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def _compact(data: bytes) -> bytes:
    """An exact-size copy: orjson's bytes keep a ≈ 4 KB buffer each, which a store that holds
    them for the life of a stream would multiply by every stream and event."""
    return bytes(memoryview(data))


class MemoryStore:
    """Process-local store. Each method runs without awaiting, so it is atomic on the loop."""

    kind = "memory"

    def __init__(self, history_cap: int = 1000, episode_budget: int = 50) -> None:
        self._streams: dict[str, tuple[int, StreamRecord]] = {}
        self._history: dict[str, deque[bytes]] = {}
        # a list: a deque's block is 600 B per stream; a deque once it holds more than
        # RAW_DEQUE_FROM points (a recorded history: dropping the oldest stays O(1))
        self._raw: dict[str, list[bytes] | deque[bytes]] = {}
        self._episodes: dict[str, deque[bytes]] = {}
        self._budget = episode_budget
        self._open: dict[str, bytes] = {}
        self._gauges: dict[str, bytes] = {}
        self._cap = history_cap

    async def get_many(self, stream_ids: Sequence[str]) -> list[StoredStream | None]:
        out: list[StoredStream | None] = []
        for sid in stream_ids:
            found = self._streams.get(sid)
            out.append(
                None
                if found is None
                else StoredStream(sid, found[0], found[1].meta_bytes(), found[1].state_bytes())
            )
        return out

    async def commit_many(self, groups: Sequence[Sequence[StreamUpdate]]) -> list[list[str]]:
        return [await self.commit(g) for g in groups]

    async def commit(self, updates: Sequence[StreamUpdate]) -> list[str]:
        conflicts = [
            u.stream_id for u in updates if self._version(u.stream_id) != u.expected_version
        ]
        if conflicts:
            return conflicts
        for u in updates:
            self._streams[u.stream_id] = (u.expected_version + 1, u.record)
            if u.events:
                history = self._history.setdefault(u.stream_id, deque(maxlen=self._cap))
                history.extend(map(_compact, u.events))
            if u.open_alarm is None:
                self._open.pop(u.stream_id, None)
            else:
                self._open[u.stream_id] = _compact(u.open_alarm)
            self._gauges[u.stream_id] = _compact(u.gauge)
            if u.raw_keep >= 0:
                self._keep_raw(u.stream_id, u.raw, u.raw_keep)
            if u.episodes:
                eps = self._episodes.setdefault(u.stream_id, deque(maxlen=self._budget))
                eps.extend(map(_compact, u.episodes))
        return []

    def _keep_raw(self, stream_id: str, new: Sequence[bytes], keep: int) -> None:
        raw = self._raw.setdefault(stream_id, [])
        raw.extend(new)
        excess = len(raw) - keep
        if isinstance(raw, list):
            del raw[: max(0, excess)]
            if len(raw) > RAW_DEQUE_FROM:
                self._raw[stream_id] = deque(raw)
        else:
            for _ in range(max(0, excess)):
                raw.popleft()

    def _version(self, stream_id: str) -> int:
        stored = self._streams.get(stream_id)
        return 0 if stored is None else stored[0]

    async def delete(self, stream_id: str) -> bool:
        found = self._streams.pop(stream_id, None) is not None
        for d in (self._history, self._open, self._gauges, self._raw, self._episodes):
            d.pop(stream_id, None)
        return found

    async def list_streams(self) -> list[str]:
        return sorted(self._streams)

    async def alarm_history(self, stream_id: str) -> list[bytes]:
        return list(self._history.get(stream_id, ()))

    async def open_alarms(self) -> list[bytes]:
        return [self._open[k] for k in sorted(self._open)]

    async def stream_page(
        self, cursor: str | None, limit: int, prefix: str = ""
    ) -> tuple[list[str], str | None]:
        ids = _keyset_page((k for k in self._streams if k.startswith(prefix)), cursor, limit)
        return ids, (ids[-1] if len(ids) == limit else None)

    async def open_alarm_page(
        self, cursor: str | None, limit: int, prefix: str = ""
    ) -> tuple[list[bytes], str | None]:
        ids = _keyset_page((k for k in self._open if k.startswith(prefix)), cursor, limit)
        return [self._open[k] for k in ids], (ids[-1] if len(ids) == limit else None)

    async def gauge_chunks(self) -> AsyncIterator[list[tuple[str, bytes]]]:
        ids = list(self._gauges)  # a snapshot of the keys: commits may run between chunks
        for lo in range(0, len(ids), GAUGE_CHUNK):
            got = ((s, self._gauges.get(s)) for s in ids[lo : lo + GAUGE_CHUNK])
            yield [(s, g) for s, g in got if g is not None]

    async def raw_history(self, stream_id: str) -> list[bytes]:
        return list(self._raw.get(stream_id, ()))

    async def raw_range(self, stream_id: str, start: int, stop: int) -> list[bytes]:
        raw = self._raw.get(stream_id, ())
        n = len(raw)
        lo = max(0, start + n if start < 0 else start)
        hi = min(n - 1, stop + n if stop < 0 else stop)
        if isinstance(raw, deque):
            return [raw[i] for i in range(lo, hi + 1)]
        return list(raw[lo : hi + 1])

    async def raw_length(self, stream_id: str) -> int:
        return len(self._raw.get(stream_id, ()))

    async def episodes(self, stream_id: str) -> list[bytes]:
        return list(self._episodes.get(stream_id, ()))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def _keyset_page(keys: Iterable[str], after: str | None, limit: int) -> list[str]:
    """The first `limit` keys in sorted order that come after `after` (keyset pagination: a
    page never repeats or skips a key that stays present).

    >>> _keyset_page(["c", "a", "b", "d"], "b", 2)
    ['c', 'd']
    """
    ordered = sorted(keys)
    start = 0 if after is None else bisect.bisect_right(ordered, after)
    return ordered[start : start + limit]
