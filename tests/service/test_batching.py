"""Micro-batching and the stream cache, on the real ingest path (no HTTP in between).

Concurrent requests from many streams are scored by far fewer model calls than requests, each
stream's results equal what it gets alone, a bad request in a batch fails alone, and a stream
kept in one process's cache is not trusted over Redis when another process changed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from service.app import build_services
from service.deps import Services
from service.errors import ServiceError
from service.ingest.pipeline import PointBatch
from service.ingest.wire import stream_points
from service.metrics import ServiceMetrics
from service.settings import load_settings
from tests.support.data import points, series
from tests.support.results import assert_same_results, collect, reference


def make_services(model_dir: Path, **settings: Any) -> Services:
    services = build_services(load_settings(model_dir=model_dir, **settings), ServiceMetrics())
    services.registry.scan()
    return services


class CountingCalls:
    """Wraps a detector's step_batch to count model calls and the streams in each."""

    def __init__(self, services: Services) -> None:
        self.sizes: list[int] = []
        for model in services.registry.active.values():
            inner = model.detector.step_batch

            def counted(batch: Any, check: bool = True, inner: Any = inner) -> Any:
                self.sizes.append(len(batch))
                return inner(batch, check)

            model.detector.step_batch = counted  # type: ignore[method-assign]


def batch(stream_id: str, values: np.ndarray, start: int) -> PointBatch:
    model, cols = stream_points(orjson.dumps({"points": points(values, start)}))
    return PointBatch(stream_id, model, cols)


@pytest.fixture
def services(model_dir: Path) -> Iterator[Services]:
    s = make_services(model_dir, batch_window_ms=2.0)
    yield s
    s.runtime.close()


def test_concurrent_requests_share_model_calls_and_keep_per_stream_results(
    services: Services, bundle_v1: Path
) -> None:
    calls = CountingCalls(services)
    n_streams, cuts = 12, [0, 5, 30, 31, 90, 160, 240]
    data = [series(240, seed=20 + i) for i in range(n_streams)]

    async def run() -> list[list[dict[str, Any]]]:
        out: list[list[dict[str, Any]]] = [[] for _ in range(n_streams)]
        for lo, hi in zip(cuts, cuts[1:], strict=False):
            replies = await asyncio.gather(
                *(
                    services.ingestor.ingest([batch(f"s{i}", data[i][lo:hi], lo)])
                    for i in range(n_streams)
                )
            )
            for i, (r,) in enumerate(replies):
                out[i].append(r)
        return out

    got = asyncio.run(run())
    requests = n_streams * (len(cuts) - 1)
    assert len(calls.sizes) < requests / 3, calls.sizes  # one call scores many requests
    assert max(calls.sizes) > 1
    for i in range(n_streams):
        want = reference(bundle_v1, data[i], cuts[1:-1], stream_id=f"s{i}")
        assert_same_results(collect(got[i]), want)


def test_a_bad_request_fails_alone_in_its_batch(services: Services) -> None:
    x = series(60)

    async def run() -> list[Any]:
        first = [services.ingestor.ingest([batch(s, x[:30], 0)]) for s in ("a", "b", "c")]
        await asyncio.gather(*first)
        bad = x[30:40].copy()
        bad[3, 1] = np.nan  # refused under the default non-finite policy
        return await asyncio.gather(
            services.ingestor.ingest([batch("a", x[30:40], 30)]),
            services.ingestor.ingest([batch("b", bad, 30)]),
            services.ingestor.ingest([batch("c", x[30:40], 30)]),
            return_exceptions=True,
        )

    a, b, c = asyncio.run(run())
    assert isinstance(b, ServiceError) and b.field == "points[3].values.pressure", b
    assert a[0]["accepted"] == c[0]["accepted"] == 10


def test_a_cached_stream_changed_by_another_process_is_read_again(
    model_dir: Path, redis_url: str, redis_prefix: str, bundle_v1: Path
) -> None:
    """Process A caches stream s at 100 points; process B deletes it and starts it afresh.
    A's cache would call the next points duplicates (acknowledged, never stored) and then score
    on a stale state: the recheck on fresh state and the commit's version check give B's truth
    instead."""
    x = series(200)
    redis = {"redis_url": redis_url, "redis_prefix": redis_prefix}
    a, b = make_services(model_dir, **redis), make_services(model_dir, **redis)

    async def run() -> list[dict[str, Any]]:
        await a.ingestor.ingest([batch("s", x[:100], 0)])
        assert a.ingestor.cache.get("s") is not None
        await b.store.delete("s")
        first = await b.ingestor.ingest([batch("s", x[:40], 0)])
        rest = await a.ingestor.ingest([batch("s", x[40:60], 40)])  # A: 40 ≤ its last (99)
        more = await a.ingestor.ingest([batch("s", x[60:70], 60)])
        for s in (a, b):
            await s.store.close()
            s.runtime.close()
        return [first[0], rest[0], more[0]]

    got = asyncio.run(run())
    assert [r["accepted"] for r in got] == [40, 20, 10]
    assert_same_results(collect(got), reference(bundle_v1, x[:70], [40, 60]))
