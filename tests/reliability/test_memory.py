"""With Redis as the store, the process keeps at most TAD_STREAM_CACHE_SIZE decoded streams
(least recently used dropped first): thousands of streams coming and going grow its memory by
the cache's bound and nothing per stream beyond it, and this test fails the day something
keeps per-stream state outside the bounded cache. A stream dropped from the cache while idle
continues exactly from Redis.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path
from typing import Any

from tests.support.data import points, series
from tests.support.results import assert_same_results, collect, reference

PER_REQUEST = 50
POINTS = 26  # past the 24-point warm-up: every stream is scored and has an embedding cache
NEW_STREAMS = 1500
BYTES_PER_STREAM = 64  # allowed growth past the cache: far below any per-stream object
CACHE = 100  # streams the process may keep
CACHED_BYTES = 40_000  # a cached stream: ring buffer, embedding cache, bookkeeping (≈ 21 kB)


def test_the_process_keeps_at_most_its_cache_of_streams(
    make_client: Any, redis_url: str, redis_prefix: str, bundle_v1: Path
) -> None:
    c = make_client(redis_url=redis_url, redis_prefix=redis_prefix, stream_cache_size=CACHE)
    x = series(POINTS + 40, seed=51)
    first = c.post("/v1/streams/idle/points", json={"points": points(x[:POINTS])}).json()
    pts = points(x[:POINTS])

    def create(lo: int, n: int) -> None:
        for k in range(lo, lo + n, PER_REQUEST):
            body = {
                "streams": [
                    {"stream_id": f"m{i}", "points": pts} for i in range(k, k + PER_REQUEST)
                ]
            }
            r = c.post("/v1/points", json=body)
            assert r.status_code == 200, r.text
            assert all(res["accepted"] == POINTS for res in r.json()["results"])

    create(0, 300)  # warm-up: connection pools, caches of the code paths, the allocator
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        create(300, NEW_STREAMS)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(c.app.state.services.ingestor.cache) == CACHE
    bound = CACHE * CACHED_BYTES + NEW_STREAMS * BYTES_PER_STREAM
    assert grown < bound, f"{grown / NEW_STREAMS:.0f} bytes per stream"
    assert c.get("/v1/streams/m1799").json()["count"] == POINTS  # they are all in Redis

    rest = c.post("/v1/streams/idle/points", json={"points": points(x[POINTS:], POINTS)}).json()
    assert_same_results(collect([first, rest]), reference(bundle_v1, x, [POINTS]))
