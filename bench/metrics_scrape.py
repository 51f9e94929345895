"""/metrics at many streams: scrape time, body size and the worst event-loop stall, side by side
with the previous exporter (every stream's series, parsed and rendered on the loop).

    python bench/metrics_scrape.py --streams 1000 20000 100000

A ticker task wakes every millisecond on the loop while a scrape runs; its longest gap is the
stall every HTTP and WebSocket request of that process would have waited.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated

import orjson
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.metrics import ServiceMetrics  # noqa: E402


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


async def measure(n: int, top: int, alarmed: int) -> dict[str, float]:
    raw = gauges(n, alarmed)
    new = ServiceMetrics(top_streams=top)
    old = ServiceMetrics(top_streams=n)  # every stream exported, as before

    old.streams.CHUNK = 10**9  # the previous route: one piece, every stream rendered
    t0 = time.perf_counter()
    body_new = await new.scrape(raw)
    scrape_new = time.perf_counter() - t0
    t0 = time.perf_counter()
    body_old = await old.scrape(raw)
    scrape_old = time.perf_counter() - t0

    stall_new = await stall_during(asyncio.ensure_future(new.scrape(raw)))

    async def on_loop() -> bytes:
        await asyncio.sleep(0.002)
        return await old.scrape(raw)

    stall_old = await stall_during(asyncio.ensure_future(on_loop()))
    return {
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
        "+ chunked (ms) | worst loop stall, before (ms) | body bounded (KB) | body before (KB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for n in streams:
        r = asyncio.run(measure(n, top, alarmed))
        print(
            f"| {n:,} | {r['scrape_new_ms']:.0f} | {r['scrape_old_ms']:.0f} "
            f"| {r['stall_new_ms']:.1f} | {r['stall_old_ms']:.0f} "
            f"| {r['body_new_kb']:.0f} | {r['body_old_kb']:.0f} |"
        )


if __name__ == "__main__":
    typer.run(main)
