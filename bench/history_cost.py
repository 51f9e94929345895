"""What a recorded history costs per stream (issue 26): bytes per point and per day at 1 Hz.

    python bench/history_cost.py                 # C = 38 channels, 20,000 points; ~10 s

Builds one stream's history the way the service stores it (`pack_points`: float64 index,
timestamp and C values per point) in the memory store's structure (measured with tracemalloc)
and in a private redis-server (`MEMORY USAGE` of the list), and prints bytes per point and MB
per stream per day at one point a second, next to the state a stream keeps anyway. The
write-path cost (throughput with recording on and off) is a row of `make perf`.
"""

from __future__ import annotations

import sys
import tempfile
import tracemalloc
from collections import deque
from pathlib import Path
from typing import Annotated

import numpy as np
import redis
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.state_codec import encode_state  # noqa: E402
from detector.stream import StreamState  # noqa: E402
from service.clustering.episodes import pack_points  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

DAY_S = 86_400


def points(n: int, c: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    return pack_points(
        np.arange(n, dtype=np.float64),
        np.arange(n, dtype=np.float64) + 1e9,
        rng.normal(size=(n, c)),
    )


def memory_bytes(items: list[bytes]) -> float:
    """Bytes the memory store holds for these items (a deque of bytes objects)."""
    copies = [bytes(memoryview(x)) for x in items[:1]]  # warm the allocator
    del copies
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = deque(bytes(memoryview(x)) for x in items)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(held) == len(items)
    return (after - before) / len(items)


def redis_bytes(items: list[bytes]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), persistent=False).start()
        try:
            r = redis.Redis.from_url(server.url)
            for lo in range(0, len(items), 1000):
                r.rpush("raw:{s}", *items[lo : lo + 1000])
            used = int(r.memory_usage("raw:{s}", samples=0) or 0)
            r.close()
        finally:
            server.stop()
    return used / len(items)


def main(
    channels: Annotated[int, typer.Option(help="channels per point")] = 38,
    n_points: Annotated[int, typer.Option(help="points in the measured history")] = 20_000,
) -> None:
    items = points(n_points, channels)
    state = len(encode_state(StreamState("s", channels)))
    print(f"C = {channels}, {n_points:,} points; a point packed: {len(items[0])} bytes\n")
    print(
        "| store | bytes / point | MB / stream / day at 1 Hz | stream state (bytes, kept anyway) |"
    )
    print("|---|---|---|---|")
    for name, per in (("memory", memory_bytes(items)), ("redis", redis_bytes(items))):
        print(f"| {name} | {per:.0f} | {per * DAY_S / 1e6:.1f} | {state} |")


if __name__ == "__main__":
    typer.run(main)
