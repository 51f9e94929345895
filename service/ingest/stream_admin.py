"""Explicit stream management: create or reconfigure (model, α, h), re-baseline, describe,
delete.

Creation goes through the same locked read-modify-commit as ingest, so a stream created by
`PUT` on one replica while another replica auto-creates it on a first point ends up as one
stream, and changing α/h never races with points being scored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import orjson

from detector.alarm import AlarmEvent, AlarmParams
from detector.budget import thresholds
from detector.errors import ChannelCountError
from service.deps import Services
from service.errors import Conflict, InvalidPoint, Unavailable
from service.ingest.result_json import event_dict, open_alarm_dict
from service.ingest.streams import Stream, not_found, update_for
from service.registry import LoadedModel
from service.schemas import Rebaseline, StreamCreate


def _params(
    body: StreamCreate, stream: Stream, model: LoadedModel, budget_h: float | None
) -> AlarmParams | None:
    """New per-stream params if the body sets α, h or a budget (its h: `budget_h`), else the
    stream's current override."""
    if body.alpha is None and body.threshold is None and budget_h is None:
        return stream.state.params
    base = stream.state.params or model.bundle.calibration.params
    threshold = body.threshold if body.threshold is not None else budget_h
    return dataclasses.replace(
        base,
        alpha=body.alpha if body.alpha is not None else base.alpha,
        threshold=threshold if threshold is not None else base.threshold,
    )


def _budget_threshold(body: StreamCreate, model: LoadedModel, base: AlarmParams) -> float:
    """h for the body's false-alarm budget, from the bundle's validation period (the same rule
    the trainer used: detector.budget); 422 for a bundle without its validation scores."""
    cal = model.bundle.calibration
    if cal.validation_scores is None:
        raise InvalidPoint(
            f"model {model.name!r} predates false-alarm budgets (no validation scores in its "
            "bundle): retrain it, or set threshold",
            field="false_alarms_per_10k",
            kind="unsupported",
        )
    params = dataclasses.replace(base, alpha=body.alpha if body.alpha is not None else base.alpha)
    budget = float(body.false_alarms_per_10k or 0.0)
    seed = int(model.bundle.manifest.get("training", {}).get("seed", 0))
    return thresholds(
        cal.validation_scores,
        params,
        budget,
        cal.min_alarm_points,
        seed,
        max_alarm_points=cal.max_alarm_points,
    )["threshold"]


async def configure_stream(
    services: Services,
    stream_id: str,
    body: StreamCreate,
    allow_switch: Callable[[], None] = lambda: None,
) -> tuple[dict[str, Any], bool]:
    """Create the stream, move it to another model (`allow_switch` raises if the caller may
    not), or update its α/h; returns (StreamInfo dict, created)."""
    binder, store = services.binder, services.store
    async with services.locks.hold([stream_id]):
        for _ in range(services.settings.commit_retries):
            (stored,) = await store.get_many([stream_id])
            events: list[bytes] = []
            switched = False
            if stored is None:
                stream, model = binder.new(stream_id, body.model)
            else:
                stream, model = binder.existing(stored)
                if body.model is not None and body.model != model.name:
                    allow_switch()
                    old, switched = model, True
                    model, closed = switch_model(services, stream, model, body.model)
                    events = [orjson.dumps(event_dict(e, old)) for e in closed]
                    services.metrics.alarms_closed.labels(old.name).inc(len(closed))
            budget_h = None
            if body.false_alarms_per_10k is not None:
                base = stream.state.params or model.bundle.calibration.params
                budget_h = await asyncio.to_thread(_budget_threshold, body, model, base)
            params = _params(body, stream, model, budget_h)
            if stored is not None and not switched and params == stream.state.params:
                return stream_info(stream, model), False
            stream.state.params = params
            update = update_for(stream, model, events, window=services.settings.duplicate_window)
            services.ingestor.forget(stream_id)  # the ingest path reads the new state
            if not await store.commit([update]):
                stream.version += 1
                return stream_info(stream, model), stored is None
            services.metrics.store_conflicts.inc()
    raise Unavailable("the stream changed too often concurrently; retry", kind="contention")


def switch_model(
    services: Services, stream: Stream, old: LoadedModel, name: str
) -> tuple[LoadedModel, list[AlarmEvent]]:
    """Move the stream to model `name` (detector.online `adopt`): its raw window, count and
    history stay, its evidence and per-stream α/h restart, an open alarm closes (returned);
    the switch joins the stream's `model_history`. 409 unless the channels are the same, in
    the same order (the recorded history's rows stay in that order)."""
    new = services.binder.model(name, "model", stream.stream_id)
    if new.channels_hash != old.channels_hash:
        raise Conflict(
            f"model {new.name!r} has channels {list(new.channels)}, the stream's model "
            f"{old.name!r} has {list(old.channels)}: a stream can only move to a model of the "
            "same channels in the same order",
            field="model",
            stream_id=stream.stream_id,
        )
    try:
        state, closed = new.detector.adopt(stream.state, old.detector)
    except ChannelCountError as exc:
        raise Conflict(str(exc), field="model", stream_id=stream.stream_id) from exc
    stream.state = state
    stream.meta.model = new.name
    stream.meta.model_history.append(
        {"model": new.name, "previous": old.name, "from_index": state.count, "at": time.time()}
    )
    return new, closed


async def rebaseline_stream(services: Services, stream_id: str, body: Rebaseline) -> dict[str, Any]:
    """Make the stream's last `points` scores its new normal (detector.adaptation); an open
    alarm closes and its event joins the alarm history. Persisted like any other commit."""
    binder, store = services.binder, services.store
    async with services.locks.hold([stream_id]):
        for _ in range(services.settings.commit_retries):
            (stored,) = await store.get_many([stream_id])
            if stored is None:
                raise not_found(stream_id)
            stream, model = binder.existing(stored)
            events = model.detector.rebaseline(stream.state, body.points)
            update = update_for(
                stream,
                model,
                [orjson.dumps(event_dict(e, model)) for e in events],
                window=services.settings.duplicate_window,
            )
            services.ingestor.forget(stream_id)  # the ingest path reads the new state
            if not await store.commit([update]):
                stream.version += 1
                services.metrics.alarms_closed.labels(model.name).inc(len(events))
                return stream_info(stream, model)
            services.metrics.store_conflicts.inc()
    raise Unavailable("the stream changed too often concurrently; retry", kind="contention")


async def describe_stream(services: Services, stream_id: str) -> dict[str, Any]:
    async with services.locks.hold([stream_id]):  # not mid-way through a batch (memory store)
        (stored,) = await services.store.get_many([stream_id])
    if stored is None:
        raise not_found(stream_id)
    stream, model = services.binder.existing(stored)
    return stream_info(stream, model)


def stream_info(stream: Stream, model: LoadedModel) -> dict[str, Any]:
    st = stream.state
    params = st.params or model.bundle.calibration.params
    return {
        "stream_id": stream.stream_id,
        "model": stream.meta.model,
        "n_channels": st.n_channels,
        "count": st.count,
        "last_timestamp": float(st.last_ts) if math.isfinite(st.last_ts) else None,
        "accumulated": float(st.s),
        "alpha": params.alpha,
        "threshold": params.threshold,
        "alarms_opened": st.alarms_opened,
        "adapt_points": params.adapt_points,
        "median_points": params.median_points,
        "rebaseline_after_points": params.rebaseline_after_points,
        "drift_level": float(st.level),
        "baseline_shift": float(st.baseline),
        "open_alarm": None
        if st.alarm is None
        else open_alarm_dict(stream.stream_id, st.alarm, model),
        "model_history": stream.meta.model_history,
    }


async def alarm_history(services: Services, stream_id: str) -> dict[str, Any]:
    (stored,) = await services.store.get_many([stream_id])
    if stored is None:
        raise not_found(stream_id)
    events = [orjson.loads(e) for e in await services.store.alarm_history(stream_id)]
    return {"stream_id": stream_id, "events": events}


async def delete_stream(services: Services, stream_id: str) -> None:
    async with services.locks.hold([stream_id]):
        services.ingestor.forget(stream_id)
        if not await services.store.delete(stream_id):
            raise not_found(stream_id)
