"""Silent streams give back their embedding cache; their next points score exactly as before."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from detector.stream import StreamState
from service.ingest.stream_cache import StreamCache
from service.ingest.streams import Stream, StreamLocks, StreamMeta
from tests.support.data import points, series
from tests.support.results import assert_same_results, collect, reference


def _cache_of(client: Any, sid: str) -> Any:
    stream = client.app.state.services.ingestor.cache.get(sid)
    return stream.state.embedding_cache


def test_a_silent_stream_drops_its_cache_and_scores_the_same_after(
    make_client: Any, bundle_v1: Path
) -> None:
    client = make_client(embedding_idle_s=0.2)
    x = series(80, anomaly=(50, 60))
    first = client.post("/v1/streams/quiet/points", json={"points": points(x[:40])}).json()
    assert _cache_of(client, "quiet") is not None
    deadline = time.monotonic() + 5
    while _cache_of(client, "quiet") is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # the sweeper runs on the app's loop meanwhile
    assert _cache_of(client, "quiet") is None, "the idle stream kept its embedding cache"
    second = client.post(
        "/v1/streams/quiet/points", json={"points": points(x[40:], start=40)}
    ).json()
    assert _cache_of(client, "quiet") is not None  # rebuilt from the ring buffer
    assert_same_results(collect([first, second]), reference(bundle_v1, x))


def test_release_skips_busy_streams_and_recent_ones() -> None:
    cache = StreamCache(None)
    locks = StreamLocks()
    streams = []
    for sid in ("a", "b", "c"):
        st = StreamState(sid, 2)
        st.embedding_cache = np.zeros((23, 4), np.float32)
        s = Stream(sid, 1, StreamMeta("m", "h", np.zeros(0), 0.0), st)
        streams.append(s)
        cache.put(s)
    locks._held["b"] = deque()  # b is in a request
    assert cache.release_idle(0.0, locks.held, limit=10) == (3, 2)
    assert [s.state.embedding_cache is None for s in streams] == [True, False, True]
    del locks._held["b"]
    assert cache.release_idle(0.0, locks.held, limit=10) == (1, 1)  # b, looked at again
    assert streams[1].state.embedding_cache is None
    cache.put(streams[0])
    assert cache.release_idle(60.0, locks.held, limit=10) == (0, 0)  # a was just used
