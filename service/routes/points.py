"""Batch ingest over HTTP: one stream's points, or many streams' points in one request."""

from __future__ import annotations

from fastapi import APIRouter

from service.auth import ApiKey
from service.deps import ServicesDep, StreamIdPath
from service.ingest import PointBatch
from service.responses import OrjsonResponse, errors
from service.schemas import BatchRequest, BatchResult, PointsRequest, PointsResult

router = APIRouter(tags=["points"], dependencies=[ApiKey])
_ERRORS = errors(400, 401, 404, 409, 413, 422, 503)


@router.post("/v1/streams/{stream_id}/points", response_model=PointsResult, responses=_ERRORS)
async def post_points(
    stream_id: StreamIdPath, body: PointsRequest, services: ServicesDep
) -> OrjsonResponse:
    """Score a batch of one stream's points, oldest first. Resent points (same time as one
    accepted recently) are acknowledged as duplicates; the results are persisted before this
    answers. A new stream is created on its first point, bound to `model` (or the only model)."""
    (result,) = await services.ingestor.ingest([PointBatch(stream_id, body.model, body.points)])
    return OrjsonResponse(result)


@router.post("/v1/points", response_model=BatchResult, responses=_ERRORS)
async def post_batch(body: BatchRequest, services: ServicesDep) -> OrjsonResponse:
    """Score points of many streams with one model call per model; all or nothing."""
    batches = [
        PointBatch(s.stream_id, s.model, s.points, f"streams[{i}].points")
        for i, s in enumerate(body.streams)
    ]
    return OrjsonResponse({"results": await services.ingestor.ingest(batches)})
