"""Decoded streams kept in process memory between requests, in front of the store.

Reading, decoding and re-encoding a stream's state on every request costs more than scoring
its point, so the ingest path keeps each `Stream` (state, metadata, embedding cache) here after
a successful commit and reuses it. The store stays the authority: every commit still names the
version it read, so a stream another process changed meanwhile is refused, dropped from here
and read afresh (see `service.ingest`). With the memory store this cache and the store hold the
same objects; with Redis it is bounded (least recently used streams are dropped first).
"""

from __future__ import annotations

from collections import OrderedDict

from service.streams import Stream


class StreamCache:
    """Streams by id; `max_streams` None keeps all, 0 keeps none."""

    def __init__(self, max_streams: int | None) -> None:
        self.max_streams = max_streams
        self._streams: OrderedDict[str, Stream] = OrderedDict()

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
        if self.max_streams is not None:
            self._streams.move_to_end(stream.stream_id)
            while len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)

    def evict(self, stream_id: str) -> None:
        self._streams.pop(stream_id, None)

    def clear(self) -> None:
        self._streams.clear()
