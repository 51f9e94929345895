"""Where one WebSocket message's time goes, measured in process (issue 14).

    python bench/message_cost.py MODEL_DIR [--streams 100] [--messages 200] [--points 1]

Drives the service's own message path — parse the JSON text, ingest (locks, checks, scoring,
commit to the memory store), build the reply — for `streams` concurrent streams with no
sockets, on one core, and splits the time per message into: the ONNX graphs, the rest of
scoring (the core's numpy and Python: scaling, caches, p-values, accumulator, alarm rules),
and the service's own Python around it. `bench/perf.py` prints these rows (on its nominal
readings) next to the end-to-end and echo-only figures of the same run; alone, this script
sends random readings, under which most streams are in alarm.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.app import build_services  # noqa: E402
from service.ingest.scoring import ScoringRuntime  # noqa: E402
from service.ingest.wire import load_message as _load  # noqa: E402
from service.metrics import ServiceMetrics  # noqa: E402
from service.routes.websocket import stream_parser  # noqa: E402
from service.settings import Settings  # noqa: E402

WARMUP_MESSAGES = 25


class _Clock:
    """Seconds spent inside the wrapped callables."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        return timed


PointMaker = Callable[[np.random.Generator, int, int, int], list[dict[str, Any]]]


def random_points(
    rng: np.random.Generator, start: int, n: int, n_channels: int
) -> list[dict[str, Any]]:
    """Readings drawn at random: most are rare, so alarms open (the alarm path's worst case)."""
    return [
        {"timestamp": float(start + k), "values": rng.normal(size=n_channels).tolist()}
        for k in range(n)
    ]


async def _measure(
    model_dir: Path, streams: int, messages: int, points: int, model: str, make: PointMaker
) -> dict[str, float]:
    services = build_services(Settings(model_dir=model_dir), ServiceMetrics(100))
    await services.reload()
    loaded = services.registry.get(model)
    if loaded is None:
        raise typer.BadParameter(f"no model {model!r} in {model_dir}", param_hint="MODEL_DIR")
    c = len(loaded.channels)
    rng = np.random.default_rng(0)
    texts = [
        [
            orjson.dumps({"model": model, "points": make(rng, m * points, points, c)}).decode()
            for m in range(WARMUP_MESSAGES + messages)
        ]
        for _ in range(streams)
    ]
    parsers = [stream_parser(f"cost-{i}") for i in range(streams)]
    ingestor = services.ingestor

    async def client(i: int, lo: int, hi: int) -> None:
        for text in texts[i][lo:hi]:
            batches, _ = parsers[i](_load(text))
            results = await ingestor.ingest(batches)
            orjson.dumps(results[0]).decode()

    await asyncio.gather(*(client(i, 0, WARMUP_MESSAGES) for i in range(streams)))
    scoring, onnx = _Clock(), _Clock()
    inc = loaded.detector.incremental
    if inc is not None:
        inc.model.step = onnx.wrap(inc.model.step)  # type: ignore[method-assign]
        inc.embed.embed = onnx.wrap(inc.embed.embed)  # type: ignore[method-assign]
    runtime: ScoringRuntime = services.runtime
    runtime._score = scoring.wrap(runtime._score)  # type: ignore[method-assign]
    t0 = time.perf_counter()
    await asyncio.gather(
        *(client(i, WARMUP_MESSAGES, WARMUP_MESSAGES + messages) for i in range(streams))
    )
    total = time.perf_counter() - t0
    runtime.close()
    n = streams * messages
    return {
        "total_us": total / n * 1e6,
        "onnx_us": onnx.seconds / n * 1e6,
        "core_us": (scoring.seconds - onnx.seconds) / n * 1e6,
        "service_us": (total - scoring.seconds) / n * 1e6,
    }


def measure(
    model_dir: Path,
    streams: int = 100,
    messages: int = 200,
    points: int = 1,
    model: str = "smd",
    make: PointMaker = random_points,
) -> dict[str, float]:
    """Microseconds per message: total, ONNX graphs, rest of scoring, service Python."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    return asyncio.run(_measure(model_dir, streams, messages, points, model, make))


def main(
    model_dir: Path,
    streams: Annotated[int, typer.Option(help="concurrent streams")] = 100,
    messages: Annotated[int, typer.Option(help="timed messages per stream")] = 200,
    points: Annotated[int, typer.Option(help="points per message")] = 1,
    model: Annotated[str, typer.Option(help="model name in MODEL_DIR")] = "smd",
) -> None:
    cost = measure(model_dir, streams, messages, points, model)
    for key, us in cost.items():
        typer.echo(f"{key:12s} {us:8.1f} µs/message")


if __name__ == "__main__":
    typer.run(main)
