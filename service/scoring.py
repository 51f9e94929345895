"""The scoring runtime: runs `OnlineDetector.step_batch` off the event loop.

Model calls (ONNX Runtime plus the numpy of the online algorithm) block for milliseconds, so they
run in a small thread pool while the loop keeps reading sockets. Every call gets the points of
many streams of one model version at once, which is the seam for micro-batching: a later
batcher may merge the `step` calls that arrive within a short window into one `step_batch`
(safe, because callers hold their streams' locks, so two calls never share a stream).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from detector.online import StreamResults, StreamState
from service.registry import LoadedModel

StepItem = tuple[StreamState, np.ndarray, np.ndarray]


class ScoringRuntime:
    """Thread pool for model calls, reporting each call's duration to `observe`."""

    def __init__(self, threads: int = 1, observe: Callable[[float], None] | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tad-score")
        self._observe = observe

    async def step(self, model: LoadedModel, items: Sequence[StepItem]) -> list[StreamResults]:
        """Advance each (state, values [n, C], timestamps [n]) with one model call.

        The states are mutated in the worker thread; callers own them (decoded per request)."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, model, list(items))

    def _run(self, model: LoadedModel, items: list[StepItem]) -> list[StreamResults]:
        t0 = time.perf_counter()
        out = model.detector.step_batch(items)
        if self._observe is not None:
            self._observe(time.perf_counter() - t0)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
