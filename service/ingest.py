"""The ingest pipeline shared by HTTP and WebSocket: read, check, score, commit, answer.

For one request: lock its streams, read them from the store, drop resent duplicates, check and
convert the new points, score every stream of a model with one model call, and commit all
states in one atomic store update. Only then is anything acknowledged, so an acknowledged point
is never lost; if another process changed one of the streams meanwhile the commit is refused
and the whole request is redone from fresh state (optimistic concurrency). Bad input is
refused before anything is written: a request is all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from detector.errors import PointError
from detector.online import StreamResults
from service.clustering.episodes import EpisodeRecorder
from service.errors import InvalidPoint, ServiceError, TooLarge, Unavailable, from_point_error
from service.metrics import ServiceMetrics
from service.points import Accepted, accept
from service.registry import LoadedModel
from service.results import event_dict, results_dict
from service.schemas import Point
from service.scoring import ScoringRuntime
from service.settings import Settings
from service.store import StateStore, StoreUnavailable
from service.streams import Stream, StreamBinder, StreamLocks, not_found, update_for


@dataclass(slots=True)
class PointBatch:
    """Points for one stream as they arrived; `field` prefixes error locations."""

    stream_id: str
    model: str | None
    points: Sequence[Point]
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
    ) -> None:
        self.settings = settings
        self.binder = binder
        self.store = store
        self.runtime = runtime
        self.metrics = metrics
        self.locks = locks
        self.episodes = EpisodeRecorder(settings, store)

    async def ingest(self, batches: Sequence[PointBatch]) -> list[dict[str, Any]]:
        """Results per batch (as `PointsResult` dicts); raise ServiceError on bad input."""
        n_points = sum(len(b.points) for b in batches)
        try:
            self._check_shape(batches, n_points)
            async with self.locks.hold(b.stream_id for b in batches):
                for _ in range(self.settings.commit_retries):
                    prepared = await self._prepare(batches)
                    results = await self._score(prepared)
                    updates = [
                        await self.episodes.attach(
                            update_for(
                                p.stream,
                                p.model,
                                [orjson.dumps(event_dict(e, p.model)) for e in r.events],
                                # the whole request always fits: resending it is recognised
                                max(self.settings.duplicate_window, len(p.accepted.timestamps)),
                            ),
                            p.stream,
                            p.model,
                            p.accepted.values,
                            r,
                        )
                        for p, r in zip(prepared, results, strict=True)
                        if r is not None
                    ]
                    if not updates or not await self.store.commit(updates):
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

    def _check_shape(self, batches: Sequence[PointBatch], n_points: int) -> None:
        if n_points > self.settings.max_points_per_request:
            raise TooLarge(
                f"{n_points} points in one request; the limit is "
                f"{self.settings.max_points_per_request}",
                field="points",
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
        stored = await self.store.get_many([b.stream_id for b in batches])
        out = []
        for b, s in zip(batches, stored, strict=True):
            model_field = b.field.removesuffix("points") + "model"
            if s is not None:
                stream, model = self.binder.existing(s, b.model, model_field)
            elif self.binder.auto_create:
                stream, model = self.binder.new(b.stream_id, b.model, field=model_field)
            else:
                raise not_found(b.stream_id)
            try:
                acc = accept(
                    b.points,
                    stream.state,
                    stream.meta.recent,
                    model.channels,
                    self.settings.nonfinite_policy,
                    b.field,
                )
            except PointError as exc:
                raise from_point_error(exc) from exc
            out.append(_Prepared(b, stream, model, acc))
        return out

    async def _score(self, prepared: Sequence[_Prepared]) -> list[StreamResults | None]:
        """One model call per serving model version, for every stream with new points."""
        groups: dict[int, list[int]] = {}
        for i, p in enumerate(prepared):
            if len(p.accepted.timestamps):
                groups.setdefault(id(p.model), []).append(i)
        results: list[StreamResults | None] = [None] * len(prepared)
        for members in groups.values():
            model = prepared[members[0]].model
            items = [
                (
                    prepared[i].stream.state,
                    prepared[i].accepted.values,
                    prepared[i].accepted.timestamps,
                )
                for i in members
            ]
            try:
                out = await self.runtime.step(model, items)
            except PointError as exc:
                raise from_point_error(exc) from exc
            for i, r in zip(members, out, strict=True):
                results[i] = r
                prepared[i].stream.meta.recent.extend(prepared[i].accepted.timestamps.tolist())
        return results

    def _answer(self, p: _Prepared, r: StreamResults | None) -> dict[str, Any]:
        acc, m = p.accepted, self.metrics
        m.points_accepted.inc(len(acc.timestamps))
        m.points_duplicate.inc(len(acc.status) - len(acc.timestamps))
        if acc.held:
            m.values_held.inc(acc.held)
        for e in r.events if r is not None else ():
            (m.alarms_opened if e.kind == "opened" else m.alarms_closed).labels(p.model.name).inc()
        return results_dict(p.batch.stream_id, p.model, acc.status, acc.held, r)
