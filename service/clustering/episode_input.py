"""Fault families: a job that names streams clusters their recorded alarm episodes.

Episodes are read from the state store when the job is submitted, so the job carries its own
snapshot (later episodes or evictions do not change it). They are brought to a common length by
linear resampling over each episode's own span (onset → offset, by point position, not by
timestamp): every model position then covers the same fraction of the episode, whatever its
duration. The length is `options.length`, else the longest episode kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson

from service.clustering.inputs import JobInput, UploadLimits, check_common, stack_series
from service.clustering.schemas import ClusteringJobRequest
from service.errors import InvalidPoint
from service.ingest.streams import not_found
from service.state.store import StateStore


async def episode_input(
    store: StateStore, req: ClusteringJobRequest, limits: UploadLimits
) -> JobInput:
    assert req.streams is not None
    found = await store.get_many(req.streams)
    for i, (sid, s) in enumerate(zip(req.streams, found, strict=True)):
        if s is None:
            err = not_found(sid)
            err.field = f"streams[{i}]"
            raise err
    raw = [await store.episodes(sid) for sid in req.streams]
    return await asyncio.to_thread(_build, req, raw, limits)


def _build(req: ClusteringJobRequest, raw: list[list[bytes]], limits: UploadLimits) -> JobInput:
    assert req.streams is not None
    arrays: list[np.ndarray] = []
    refs: list[dict[str, Any]] = []
    channels: list[str] | None = None
    for i, (sid, items) in enumerate(zip(req.streams, raw, strict=True)):
        for blob in items:
            ep = orjson.loads(blob)
            onset = float(ep["onset_ts"])
            if (req.start is not None and onset < req.start) or (
                req.end is not None and onset > req.end
            ):
                continue
            values = np.asarray(ep["values"], dtype=np.float64)
            if values.ndim != 2 or len(values) == 0:
                continue  # nothing of it was kept (history was off or too short)
            if channels is None:
                channels = list(ep["channels"])
            elif list(ep["channels"]) != channels:
                raise InvalidPoint(
                    f"stream {sid!r} has channels {ep['channels']}, other episodes {channels}: "
                    "cluster streams of one channel schema together",
                    field=f"streams[{i}]",
                    stream_id=sid,
                )
            arrays.append(values)
            refs.append(
                {
                    "stream_id": sid,
                    "alarm_id": int(ep["alarm_id"]),
                    "onset_ts": onset,
                    "offset_ts": float(ep["offset_ts"]),
                    "n_points": int(ep["n_points"]),
                    "truncated": bool(ep["truncated"]),
                }
            )
    if len(arrays) < max(2, req.n_clusters):
        where = "" if req.start is None and req.end is None else " in the time range"
        raise InvalidPoint(
            f"{len(arrays)} recorded alarm episodes{where}; need at least n_clusters = "
            f"{req.n_clusters}",
            field="streams",
            kind="not_enough_episodes",
        )
    length = req.options.length or min(limits.max_t, max(2, max(len(a) for a in arrays)))
    x, resampled = stack_series(arrays, length, limits, "streams")
    check_common(x.shape, req.n_clusters, None, req.options, limits, method=req.method)
    return JobInput(
        x,
        None,
        req.n_clusters,
        req.options,
        "episodes",
        resampled,
        episodes=refs,
        method=req.method,
    )
