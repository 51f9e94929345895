"""Alarm episodes of a stream: the raw points of each closed alarm, onset to offset."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query

from service.auth import ApiKey
from service.clustering.schemas import EpisodeList
from service.deps import ReadStream, ServicesDep
from service.ingest.streams import not_found
from service.responses import OrjsonResponse, errors

router = APIRouter(tags=["alarms"], dependencies=[ApiKey])


@router.get(
    "/v1/streams/{stream_id}/episodes",
    response_model=EpisodeList,
    responses=errors(401, 403, 404, 422, 503),
)
async def stream_episodes(
    stream_id: ReadStream,
    services: ServicesDep,
    points: Annotated[bool, Query(description="include timestamps and values")] = False,
) -> OrjsonResponse:
    """The stream's recorded alarm episodes, oldest first (the last TAD_EPISODE_BUDGET)."""
    (stored,) = await services.store.get_many([stream_id])
    if stored is None:
        raise not_found(stream_id)
    episodes = []
    for raw in await services.store.episodes(stream_id):
        ep = orjson.loads(raw)
        if not points:
            ep["timestamps"] = ep["values"] = None
        episodes.append(ep)
    return OrjsonResponse({"stream_id": stream_id, "episodes": episodes})
