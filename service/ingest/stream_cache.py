"""Decoded streams kept in process memory between requests, in front of the store.

Reading, decoding and re-encoding a stream's state on every request costs more than scoring
its point, so the ingest path keeps each `Stream` (state, metadata, embedding cache) here after
a successful commit and reuses it. The store stays the authority: every commit still names the
version it read, so a stream another process changed meanwhile is refused, dropped from here
and read afresh (see `service.ingest.pipeline`). With the memory store this cache and the store
hold the same objects; with Redis it is bounded (least recently used streams are dropped first).

A stream's model embedding cache (~12 KB at d = 128, half of its memory) is derived: the
scorer rebuilds it from the ring buffer for L − 1 embeddings. `release_idle` gives it back for
streams that sent nothing for a while, so a large fleet of mostly silent sensors costs what
their raw state costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import time
from collections import OrderedDict
from collections.abc import Callable

from service.ingest.streams import Stream


class StreamCache:
    """Streams by id; `max_streams` None keeps all, 0 keeps none."""

    def __init__(self, max_streams: int | None) -> None:
        self.max_streams = max_streams
        self._streams: OrderedDict[str, Stream] = OrderedDict()
        self._warm: OrderedDict[str, float] = OrderedDict()  # last put (monotonic s), oldest first

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, stream_id: object) -> bool:
        """Whether this process holds the stream (no LRU bump: /metrics asks, not ingest)."""
        return stream_id in self._streams

    def get(self, stream_id: str) -> Stream | None:
        stream = self._streams.get(stream_id)
        if stream is not None and self.max_streams is not None:
            self._streams.move_to_end(stream_id)
        return stream

    def put(self, stream: Stream) -> None:
        if self.max_streams == 0:
            return
        self._streams[stream.stream_id] = stream
        self._warm[stream.stream_id] = time.monotonic()
        self._warm.move_to_end(stream.stream_id)
        if self.max_streams is not None:
            self._streams.move_to_end(stream.stream_id)
            while len(self._streams) > self.max_streams:
                self._warm.pop(self._streams.popitem(last=False)[0], None)

    def evict(self, stream_id: str) -> None:
        self._streams.pop(stream_id, None)
        self._warm.pop(stream_id, None)

    def clear(self) -> None:
        self._streams.clear()
        self._warm.clear()

    def warm_count(self) -> int:
        """Streams put since their cache was last looked at by `release_idle`."""
        return len(self._warm)

    def release_idle(
        self, idle_s: float, busy: Callable[[str], bool], limit: int
    ) -> tuple[int, int]:
        """Drop the embedding cache of streams not put for `idle_s` seconds and not `busy` (in
        a request: the scorer may be using it), looking at `limit` streams at most; returns
        (looked at, dropped), so a caller can go on in steps without holding the event loop."""
        cutoff, seen, dropped, later = time.monotonic() - idle_s, 0, 0, []
        while self._warm and seen < limit:
            sid, used = next(iter(self._warm.items()))
            if used > cutoff:
                break
            del self._warm[sid]
            seen += 1
            stream = self._streams.get(sid)
            if stream is None:
                continue
            if busy(sid):
                later.append((sid, used))
            elif stream.state.embedding_cache is not None:
                stream.state.embedding_cache, stream.state.cache_count = None, -1
                dropped += 1
        for sid, used in later:  # looked at again next time
            self._warm[sid] = used
        return seen, dropped


IDLE_SWEEP_STEP = 5_000  # streams looked at before the loop is let in again
TRIM_AFTER_CACHES = 1_000  # ≈ 12 MB freed at d = 128: worth handing back to the system


async def release_idle_caches(
    cache: StreamCache, busy: Callable[[str], bool], idle_s: float
) -> None:
    """Forever: give back the embedding caches of streams silent for `idle_s` (0: never), and
    the freed heap to the system (glibc keeps freed 12 KB blocks for the process otherwise)."""
    if idle_s <= 0:
        return
    untrimmed = 0  # caches dropped since the heap was last trimmed
    while True:
        await asyncio.sleep(min(max(idle_s / 4, 0.05), 60.0))
        seen = IDLE_SWEEP_STEP
        while seen == IDLE_SWEEP_STEP:
            seen, dropped = cache.release_idle(idle_s, busy, IDLE_SWEEP_STEP)
            untrimmed += dropped
            await asyncio.sleep(0)
        if untrimmed >= TRIM_AFTER_CACHES or (untrimmed and not cache.warm_count()):
            trim_heap()
            untrimmed = 0


def trim_heap() -> None:
    """glibc's malloc_trim(0): return free heap pages to the system (a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
