"""The scoring runtime: micro-batches requests from every connection into one model call.

A request (HTTP or one WebSocket message) hands its streams' points to `submit`. One batch is
in flight at a time; requests that arrive while it runs (and, if `TAD_BATCH_WINDOW_MS` > 0,
within that window of the first request of an idle runtime) are scored together as the next
batch: one thread hop, one `OnlineDetector.step_batch` per model over all their streams, then
one store round trip that commits each request's updates atomically on its own. Under load
batches grow by themselves (group commit); a batch is cut at `TAD_BATCH_MAX_POINTS`. Per-stream
order holds because a request holds its streams' locks until it is answered, so two requests in
one batch never share a stream.

Model calls (ONNX Runtime plus the numpy of the online algorithm) run in a small thread pool, so
the event loop keeps reading sockets meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from detector.errors import PointError
from detector.stream import StreamResults, StreamState
from service.registry import LoadedModel
from service.state.store import StateStore, StreamUpdate

StepItem = tuple[StreamState, np.ndarray, np.ndarray]  # state, values [n, C], timestamps [n]
Outcome = tuple[list[StreamResults | None], list[str]]  # results per item, refused streams


@dataclass(eq=False, slots=True)
class Job:
    """One request: its items, and how to turn their results into store updates."""

    items: list[tuple[LoadedModel, StepItem]]
    build: Callable[[list[StreamResults | None]], Awaitable[list[StreamUpdate]]]
    future: asyncio.Future[Outcome]
    n_points: int
    results: list[StreamResults | None] = field(default_factory=list)
    error: BaseException | None = None
    batch: asyncio.Task[None] | None = None  # the batch that scores it, once started

    def resolve(self, outcome: Outcome) -> None:
        if not self.future.done():  # a cancelled caller's future stays cancelled
            self.future.set_result(outcome)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class ScoringRuntime:
    """Micro-batcher and thread pool; `observe` gets each batch's scoring seconds."""

    def __init__(
        self,
        store: StateStore,
        threads: int = 1,
        window_s: float = 0.0,
        max_points: int = 4096,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tad-score")
        self.store = store
        self.window_s = window_s
        self.max_points = max_points
        self._observe = observe
        self._pending: deque[Job] = deque()
        self._pending_points = 0
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False  # a batch is being scored or committed
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self,
        items: list[tuple[LoadedModel, StepItem]],
        build: Callable[[list[StreamResults | None]], Awaitable[list[StreamUpdate]]],
    ) -> Outcome:
        """Score the items and commit what `build` makes of the results; returns the results
        and the streams whose commit was refused (another writer changed them).

        A caller cancelled once its batch started still waits for the batch to finish before
        it goes (and releases its stream locks): the batch may be advancing and committing its
        streams. One cancelled before is simply taken off the queue."""
        loop = asyncio.get_running_loop()
        n = 0
        for _, (_, v, _) in items:
            n += len(v)
        job = Job(items, build, loop.create_future(), n, [None] * len(items))
        self._pending.append(job)
        self._pending_points += n
        if not self._busy:
            if self._pending_points >= self.max_points or self.window_s == 0:
                self._start(loop)
            elif self._timer is None:
                self._timer = loop.call_later(self.window_s, self._start, loop)
        try:
            return await job.future  # no shield: a cancelled future is never resolved below
        except asyncio.CancelledError:
            if job.batch is None:
                self._pending.remove(job)
                self._pending_points -= n
            else:
                await asyncio.wait([job.batch])
            raise

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs: list[Job] = []
        taken = 0
        while self._pending and (not jobs or taken + self._pending[0].n_points <= self.max_points):
            job = self._pending.popleft()
            jobs.append(job)
            taken += job.n_points
        self._pending_points -= taken
        if jobs:
            self._busy = True
            task = loop.create_task(self._flush(jobs))
            for job in jobs:
                job.batch = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _done(self) -> None:
        """A batch finished: what came meanwhile has waited long enough; score it now."""
        self._busy = False
        if self._pending:
            self._start(asyncio.get_running_loop())

    async def _flush(self, jobs: list[Job]) -> None:
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, self._score, jobs)
            groups, committing = [], []
            for job in jobs:
                if job.error is not None:
                    continue
                try:
                    updates = await job.build(job.results)
                except Exception as exc:
                    job.error = exc
                    continue
                if updates:
                    groups.append(updates)
                    committing.append(job)
                else:
                    job.resolve((job.results, []))
            conflicts = await self.store.commit_many(groups) if groups else []
            for job, refused in zip(committing, conflicts, strict=True):
                job.resolve((job.results, refused))
        except BaseException as exc:  # store down, or a bug: every unanswered request learns it
            for job in jobs:
                job.fail(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._done()
        for job in jobs:
            job.fail(job.error or RuntimeError("request was not scored"))

    def _score(self, jobs: Sequence[Job]) -> None:
        """In the worker thread: one `step_batch` per model over every request's streams. The
        core refuses a batch with any bad item before changing anything; then each request is
        scored on its own, so a bad one fails alone."""
        t0 = time.perf_counter()
        by_model: dict[int, tuple[LoadedModel, list[tuple[Job, int, StepItem]]]] = {}
        for job in jobs:
            for i, (model, item) in enumerate(job.items):
                by_model.setdefault(id(model), (model, []))[1].append((job, i, item))
        for model, members in by_model.values():
            try:
                results = model.detector.step_batch([item for _, _, item in members])
            except PointError:
                self._score_alone(model, members)
                continue
            except Exception as exc:
                for job, _, _ in members:
                    job.error = exc
                continue
            for (job, i, _), res in zip(members, results, strict=True):
                job.results[i] = res
        if self._observe is not None:
            self._observe(time.perf_counter() - t0)

    @staticmethod
    def _score_alone(model: LoadedModel, members: list[tuple[Job, int, StepItem]]) -> None:
        by_job: dict[int, list[tuple[Job, int, StepItem]]] = {}
        for m in members:
            by_job.setdefault(id(m[0]), []).append(m)
        for own in by_job.values():
            job = own[0][0]
            try:
                results = model.detector.step_batch([item for _, _, item in own])
            except Exception as exc:
                job.error = exc
                continue
            for (_, i, _), res in zip(own, results, strict=True):
                job.results[i] = res

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
