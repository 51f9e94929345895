"""Where stream state lives: the `StateStore` protocol and the in-memory store.

A store is deliberately dumb: it keeps opaque bytes per stream (service metadata and the
`encode_state` bytes) behind a version counter, and commits a request's updates all-or-nothing
with optimistic concurrency. Everything that understands the bytes lives in `service.streams`.
The in-memory store keeps the same bytes as Redis would, so both behave identically.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class StoreUnavailable(RuntimeError):
    """The store could not be reached; the operation did not happen (or is unknown)."""


@dataclass(frozen=True, slots=True)
class StoredStream:
    """One stream as stored: version counter, metadata JSON and state bytes."""

    stream_id: str
    version: int
    meta: bytes
    state: bytes


@dataclass(frozen=True, slots=True)
class StreamUpdate:
    """New contents for one stream, valid only if its version is still `expected_version`."""

    stream_id: str
    expected_version: int  # 0: the stream must not exist yet
    meta: bytes
    state: bytes
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

    async def delete(self, stream_id: str) -> bool: ...

    async def list_streams(self) -> list[str]: ...

    async def alarm_history(self, stream_id: str) -> list[bytes]: ...

    async def open_alarms(self) -> list[bytes]: ...

    async def gauges(self) -> dict[str, bytes]: ...

    async def raw_history(self, stream_id: str) -> list[bytes]: ...

    async def episodes(self, stream_id: str) -> list[bytes]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class MemoryStore:
    """Process-local store. Each method runs without awaiting, so it is atomic on the loop."""

    kind = "memory"

    def __init__(self, history_cap: int = 1000, episode_budget: int = 50) -> None:
        self._streams: dict[str, StoredStream] = {}
        self._history: dict[str, deque[bytes]] = {}
        self._raw: dict[str, deque[bytes]] = {}
        self._episodes: dict[str, deque[bytes]] = {}
        self._budget = episode_budget
        self._open: dict[str, bytes] = {}
        self._gauges: dict[str, bytes] = {}
        self._cap = history_cap

    async def get_many(self, stream_ids: Sequence[str]) -> list[StoredStream | None]:
        return [self._streams.get(i) for i in stream_ids]

    async def commit(self, updates: Sequence[StreamUpdate]) -> list[str]:
        conflicts = [
            u.stream_id for u in updates if self._version(u.stream_id) != u.expected_version
        ]
        if conflicts:
            return conflicts
        for u in updates:
            self._streams[u.stream_id] = StoredStream(
                u.stream_id, u.expected_version + 1, u.meta, u.state
            )
            if u.events:
                self._history.setdefault(u.stream_id, deque(maxlen=self._cap)).extend(u.events)
            if u.open_alarm is None:
                self._open.pop(u.stream_id, None)
            else:
                self._open[u.stream_id] = u.open_alarm
            self._gauges[u.stream_id] = u.gauge
            if u.raw_keep >= 0:
                raw = self._raw.setdefault(u.stream_id, deque())
                raw.extend(u.raw)
                while len(raw) > u.raw_keep:
                    raw.popleft()
            if u.episodes:
                eps = self._episodes.setdefault(u.stream_id, deque(maxlen=self._budget))
                eps.extend(u.episodes)
        return []

    def _version(self, stream_id: str) -> int:
        stored = self._streams.get(stream_id)
        return 0 if stored is None else stored.version

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

    async def gauges(self) -> dict[str, bytes]:
        return dict(self._gauges)

    async def raw_history(self, stream_id: str) -> list[bytes]:
        return list(self._raw.get(stream_id, ()))

    async def episodes(self, stream_id: str) -> list[bytes]:
        return list(self._episodes.get(stream_id, ()))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
