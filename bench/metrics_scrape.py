"""/metrics at many streams: scrape time, body size and the worst event-loop stall, side by side
with the previous exporter (every stream's series, parsed and rendered on the loop).

    python bench/metrics_scrape.py --streams 1000 20000 100000

With redis-server on the PATH it also measures the whole route's path with Redis: the gauges
hash read from a private redis-server (HSCAN in rounds of 500), then the scrape.

A ticker task wakes every millisecond on the loop while a scrape runs; its longest gap is the
stall every HTTP and WebSocket request of that process would have waited.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import orjson
import redis
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.metrics import ServiceMetrics  # noqa: E402
from service.state.redis_store import RedisStore  # noqa: E402
from service.state.store import GAUGE_CHUNK  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402


class PrivateRedis:
    """The tests' private redis-server (nothing on disk), for the Redis column."""

    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.server = RedisServer(Path(self.dir.name), persistent=False).start()
        self.url = self.server.url

    def fill(self, raw: dict[str, bytes]) -> None:
        r = redis.Redis.from_url(self.url)
        r.delete("bench:gauges")
        items = list(raw.items())
        for i in range(0, len(items), 10_000):
            r.hset("bench:gauges", mapping=dict(items[i : i + 10_000]))  # type: ignore[arg-type]
        r.close()

    def stop(self) -> None:
        self.server.stop()
        self.dir.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gauges(n: int, alarmed: int) -> dict[str, bytes]:
    """What the store holds for n streams, `alarmed` of them in alarm."""
    every = max(n // max(alarmed, 1), 1)
    return {
        f"stream-{i}": orjson.dumps(
            {
                "model": "demo",
                "s": (i * 7919) % 1000 / 10,
                "alarm": int(alarmed > 0 and i % every == 0),
            }
        )
        for i in range(n)
    }


async def chunks_of(raw: dict[str, bytes], size: int) -> AsyncIterator[list[tuple[str, bytes]]]:
    """The memory store's way (`MemoryStore.gauge_chunks`): the entries `size` at a time."""
    ids = list(raw)
    for lo in range(0, len(ids), size):
        yield [(s, raw[s]) for s in ids[lo : lo + size]]


async def stall_during(work: asyncio.Future[bytes] | None, inline: bytes | None = None) -> float:
    """Longest gap between 1 ms ticks of the loop while `work` runs (s)."""
    worst, last, done = 0.0, time.perf_counter(), False

    async def ticker() -> None:
        nonlocal worst, last
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            worst, last = max(worst, now - last), now

    t = asyncio.create_task(ticker())
    await asyncio.sleep(0.005)
    if work is not None:
        await work
    done = True
    await t
    return worst


async def measure(n: int, top: int, alarmed: int, server: PrivateRedis | None) -> dict[str, float]:
    raw = gauges(n, alarmed)
    new = ServiceMetrics(top_streams=top)
    old = ServiceMetrics(top_streams=n)  # every stream exported, as before

    t0 = time.perf_counter()
    body_new = await new.scrape(chunks_of(raw, GAUGE_CHUNK))
    scrape_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    body_old = await old.scrape(chunks_of(raw, n))  # the previous route: one piece
    scrape_old = time.perf_counter() - t0

    stall_new = await stall_during(asyncio.ensure_future(new.scrape(chunks_of(raw, GAUGE_CHUNK))))

    async def on_loop() -> bytes:
        await asyncio.sleep(0.002)
        return await old.scrape(chunks_of(raw, n))

    stall_old = await stall_during(asyncio.ensure_future(on_loop()))
    redis_ms = redis_stall_ms = float("nan")
    if server is not None:
        server.fill(raw)
        store = RedisStore(server.url, "bench:")
        via = ServiceMetrics(top_streams=top)

        async def route() -> bytes:  # what GET /metrics does with Redis
            return await via.scrape(store.gauge_chunks())

        t0 = time.perf_counter()
        await route()
        redis_ms = (time.perf_counter() - t0) * 1e3
        redis_stall_ms = await stall_during(asyncio.ensure_future(route())) * 1e3
        await store.close()
    return {
        "redis_ms": redis_ms,
        "redis_stall_ms": redis_stall_ms,
        "scrape_new_ms": scrape_new * 1e3,
        "scrape_old_ms": scrape_old * 1e3,
        "stall_new_ms": stall_new * 1e3,
        "stall_old_ms": stall_old * 1e3,
        "body_new_kb": len(body_new) / 1024,
        "body_old_kb": len(body_old) / 1024,
    }


def main(
    streams: Annotated[list[int], typer.Option(help="stream counts")] = [1000, 20000, 100000],  # noqa: B006
    top: Annotated[int, typer.Option(help="TAD_METRICS_TOP_STREAMS")] = 100,
    alarmed: Annotated[int, typer.Option(help="streams in alarm (each has its own series)")] = 50,
) -> None:
    print(f"{alarmed} streams in alarm, TAD_METRICS_TOP_STREAMS={top}")
    print(
        "| streams | scrape, bounded (ms) | scrape, every stream (ms) | worst loop stall, bounded "
        "+ chunked (ms) | worst loop stall, before (ms) | with Redis: read + scrape (ms) "
        "| with Redis: worst stall (ms) | body bounded (KB) | body before (KB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    server = PrivateRedis() if shutil.which("redis-server") else None
    try:
        for n in streams:
            r = asyncio.run(measure(n, top, alarmed, server))
            print(
                f"| {n:,} | {r['scrape_new_ms']:.0f} | {r['scrape_old_ms']:.0f} "
                f"| {r['stall_new_ms']:.1f} | {r['stall_old_ms']:.0f} "
                f"| {r['redis_ms']:.0f} | {r['redis_stall_ms']:.1f} "
                f"| {r['body_new_kb']:.0f} | {r['body_old_kb']:.0f} |"
            )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    typer.run(main)
