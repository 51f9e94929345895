"""The ingest pipeline shared by HTTP and WebSocket: check, score, commit, answer.

For one request: lock its streams, take them from the process cache (or read them from the
store), drop resent duplicates, check and convert the new points, and hand them to the scoring
runtime, which scores them together with other requests' points and commits this request's
states in one atomic store update. Only then is anything acknowledged, so an acknowledged
point is never lost; if another process changed one of the streams meanwhile the commit is
refused, the streams are dropped from the cache and the whole request is redone from fresh
state (optimistic concurrency). Bad input is refused before anything is written: a request is
all or nothing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from detector.errors import PointError
from detector.stream import StreamResults
from service.clustering.episodes import EpisodeRecorder
from service.errors import InvalidPoint, ServiceError, TooLarge, Unavailable, from_point_error
from service.ingest.points import Accepted, accept
from service.ingest.result_json import event_dict, results_dict
from service.ingest.scoring import ScoringRuntime
from service.ingest.stream_cache import StreamCache
from service.ingest.streams import Stream, StreamBinder, StreamLocks, not_found, update_for
from service.ingest.wire import PointColumns, binary_points
from service.metrics import ServiceMetrics
from service.registry import LoadedModel
from service.settings import Settings
from service.state.store import StateStore, StoreUnavailable, StreamUpdate

UPDATES_BETWEEN_YIELDS = 64  # store updates built between two yields to the event loop


@dataclass(slots=True)
class PointBatch:
    """Points for one stream as they arrived; `field` prefixes error locations."""

    stream_id: str
    model: str | None
    points: PointColumns
    field: str = "points"


@dataclass(slots=True)
class _Prepared:
    batch: PointBatch
    stream: Stream
    model: LoadedModel
    accepted: Accepted


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        binder: StreamBinder,
        store: StateStore,
        runtime: ScoringRuntime,
        metrics: ServiceMetrics,
        locks: StreamLocks,
        cache: StreamCache,
    ) -> None:
        self.settings = settings
        self.binder = binder
        self.store = store
        self.runtime = runtime
        self.metrics = metrics
        self.locks = locks
        self.cache = cache
        self.episodes = EpisodeRecorder(settings, store)

    def served_streams(self) -> Container[str] | None:
        """The streams this process has served lately (its cache); None when it keeps none,
        and so cannot tell."""
        return None if self.cache.max_streams == 0 else self.cache

    async def ingest(self, batches: Sequence[PointBatch]) -> list[dict[str, Any]]:
        """Results per batch (as `PointsResult` dicts); raise ServiceError on bad input."""
        n_points = sum(len(b.points) for b in batches)
        try:
            self._check_shape(batches, n_points)
            async with self.locks.hold(b.stream_id for b in batches):
                for _ in range(self.settings.commit_retries):
                    prepared = await self._prepare(batches)
                    results, refused = await self._submit(prepared)
                    if not refused:
                        break
                    self.metrics.store_conflicts.inc()
                else:
                    raise Unavailable(
                        "the streams changed too often concurrently; retry", kind="contention"
                    )
        except ServiceError as exc:
            self.metrics.reject(exc.kind if exc.kind != "contention" else "conflict", n_points)
            raise
        except StoreUnavailable:
            self.metrics.reject("unavailable", n_points)
            raise
        return [self._answer(p, r) for p, r in zip(prepared, results, strict=True)]

    async def _submit(
        self, prepared: list[_Prepared]
    ) -> tuple[list[StreamResults | None], list[str]]:
        """Score and commit; keep the committed streams in the cache, drop the others."""
        scored = [p for p in prepared if len(p.accepted.timestamps)]
        items = [
            (p.model, (p.stream.state, p.accepted.values, p.accepted.timestamps)) for p in scored
        ]

        async def build(results: list[StreamResults | None]) -> list[StreamUpdate]:
            return await self._updates(scored, results)

        try:
            out, refused = await self.runtime.submit(items, build) if items else ([], [])
        except PointError as exc:
            self._forget(prepared)
            raise from_point_error(exc) from exc
        except BaseException:
            self._forget(prepared)  # states may have advanced without a commit
            raise
        if refused:
            self._forget(prepared)
            return [], refused
        for p in scored:
            p.stream.version += 1
        for p in prepared:
            self.cache.put(p.stream)
        by_stream = {p.batch.stream_id: r for p, r in zip(scored, out, strict=True)}
        return [by_stream.get(p.batch.stream_id) for p in prepared], []

    def forget(self, stream_id: str) -> None:
        """Drop a stream from this process's cache: the next request reads it from the store
        (after an explicit change: creation, re-baseline, deletion)."""
        self.cache.evict(stream_id)

    def _forget(self, prepared: Sequence[_Prepared]) -> None:
        for p in prepared:
            self.forget(p.batch.stream_id)

    async def _updates(
        self, scored: Sequence[_Prepared], results: Sequence[StreamResults | None]
    ) -> list[StreamUpdate]:
        """The store updates of a scored request (runs on the loop, after scoring)."""
        updates = []
        for i, (p, r) in enumerate(zip(scored, results, strict=True)):
            if i % UPDATES_BETWEEN_YIELDS == UPDATES_BETWEEN_YIELDS - 1:
                await asyncio.sleep(0)  # a 1,000-stream request lets other requests in
            if r is None:
                continue
            meta, ts = p.stream.meta, p.accepted.timestamps
            meta.recent = np.concatenate([meta.recent, ts]) if len(meta.recent) else ts.copy()
            values = p.accepted.values
            history = self.episodes.attach_now(p.stream, p.model, values, r)
            if history is None:  # an alarm closed: its episode needs the stored history
                history = await self.episodes.attach(p.stream, p.model, values, r)
            update = update_for(
                p.stream,
                p.model,
                [orjson.dumps(event_dict(e, p.model)) for e in r.events],
                # the whole request always fits: resending it is recognised
                max(self.settings.duplicate_window, len(ts)),
                **history,
            )
            updates.append(update)
        return updates

    def precount_streams(self, body: bytes) -> None:
        """Refuse a JSON batch with far too many streams before parsing it (~1 ms for 5 MB,
        where parsing 80,000 streams held the loop 0.4 s): each stream names its `"stream_id"`
        once as a key, and the text can appear at most twice more per stream (as its id and
        its model), so more than three times the cap is over it for sure."""
        cap = self.settings.max_streams_per_request
        if body.count(b'"stream_id"') > 3 * cap:
            raise TooLarge(
                f"more than {cap} streams in one request; the limit is {cap} "
                "(TAD_MAX_STREAMS_PER_REQUEST): split it into several requests",
                field="streams",
            )

    def _check_shape(self, batches: Sequence[PointBatch], n_points: int) -> None:
        if n_points > self.settings.max_points_per_request:
            raise TooLarge(
                f"{n_points} points in one request; the limit is "
                f"{self.settings.max_points_per_request}",
                field="points",
                points=n_points,
            )
        if len(batches) > self.settings.max_streams_per_request:
            raise TooLarge(
                f"{len(batches)} streams in one request; the limit is "
                f"{self.settings.max_streams_per_request} (TAD_MAX_STREAMS_PER_REQUEST): split "
                "it into several requests",
                field="streams",
                points=n_points,
            )
        seen: set[str] = set()
        for i, b in enumerate(batches):
            if b.stream_id in seen:
                raise InvalidPoint(
                    "a stream may appear once per request",
                    field=f"streams[{i}].stream_id",
                    stream_id=b.stream_id,
                )
            seen.add(b.stream_id)

    async def _prepare(self, batches: Sequence[PointBatch]) -> list[_Prepared]:
        """Streams from the cache where it has them, the rest in one store read. A refusal or a
        duplicate computed on a cached stream of a shared store is checked again on fresh state
        (the stream may have been recreated elsewhere) before the client sees it: neither is
        committed, so the store's version check would not catch a stale answer."""
        cached = [self.cache.get(b.stream_id) for b in batches]
        missing = [b.stream_id for b, c in zip(batches, cached, strict=True) if c is None]
        stored = iter(await self.store.get_many(missing) if missing else [])
        shared = self.store.kind != "memory"
        out = []
        for b, c in zip(batches, cached, strict=True):
            model_field = b.field.removesuffix("points") + "model"
            try:
                if c is not None:
                    stream, model = self.binder.bind(c, b.model, model_field)
                else:
                    s = next(stored)
                    if s is not None:
                        stream, model = self.binder.existing(s, b.model, model_field)
                    elif self.binder.auto_create:
                        stream, model = self.binder.new(b.stream_id, b.model, field=model_field)
                    else:
                        raise not_found(b.stream_id)
                acc = self._accept(b, stream, model)
            except (ServiceError, PointError) as exc:
                if c is not None and shared:
                    self.cache.evict(b.stream_id)
                    return await self._prepare(batches)
                if isinstance(exc, PointError):
                    raise from_point_error(exc) from exc
                raise
            if c is not None and shared and len(acc.timestamps) < len(acc.status):
                # "already accepted" would be acknowledged without a commit: check it on
                # fresh state (another process may have deleted and recreated the stream)
                self.cache.evict(b.stream_id)
                return await self._prepare(batches)
            out.append(_Prepared(b, stream, model, acc))
        return out

    def _accept(self, b: PointBatch, stream: Stream, model: LoadedModel) -> Accepted:
        cols = b.points
        if cols.binary is not None:
            cols = binary_points(cols.binary, len(model.channels))
        return accept(
            cols,
            stream.state,
            stream.meta.recent,
            model.channels,
            self.settings.nonfinite_policy,
            b.field,
        )

    def _answer(self, p: _Prepared, r: StreamResults | None) -> dict[str, Any]:
        acc, m = p.accepted, self.metrics
        out = results_dict(p.batch.stream_id, p.model, acc.status, acc.held, r)
        accepted = out["accepted"]
        if accepted:
            m.points_accepted.inc(accepted)
        if out["duplicates"]:
            m.points_duplicate.inc(out["duplicates"])
        if acc.held:
            m.values_held.inc(acc.held)
        unscored = sum(  # scored points whose score is not finite: no evidence, counted here
            1
            for warm, g in zip(out["warmup"], out["score"], strict=True)
            if not warm and not -math.inf < g < math.inf
        )
        if unscored:
            m.points_unscored.labels("non_finite_score").inc(unscored)
        for e in r.events if r is not None else ():
            (m.alarms_opened if e.kind == "opened" else m.alarms_closed).labels(p.model.name).inc()
            if e.closed_by == "rebaseline":
                m.alarms_rebaselined.labels(p.model.name).inc()
        return out
