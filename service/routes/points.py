"""Batch ingest over HTTP: one stream's points, or many streams' points in one request.

Bodies are read as bytes and validated in bulk (`service.ingest.wire`), not through FastAPI's body
parameters, which would build a pydantic object per point; the OpenAPI document still shows
the `PointsRequest` / `BatchRequest` schemas. One stream's points may also come as a binary body
(`application/octet-stream`: per point a little-endian float64 timestamp and C float32 values).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, Request, Response

from service.auth import ApiKey, Ingester
from service.deps import IngestStream, ReadStream, ServicesDep
from service.errors import ServiceError
from service.ingest.history import MAX_PAGE_POINTS, history_page
from service.ingest.pipeline import PointBatch
from service.ingest.wire import (
    BINARY_TYPE,
    PointColumns,
    batch_points_async,
    stream_points_async,
)
from service.responses import OrjsonResponse, documented, errors, json_body
from service.schemas import (
    MODEL_NAME_PATTERN,
    BatchRequest,
    BatchResult,
    PointHistory,
    PointsRequest,
    PointsResult,
)

router = APIRouter(tags=["points"], dependencies=[ApiKey])
_ERRORS = errors(400, 401, 403, 404, 409, 413, 422, 503)
_BINARY_DOC = {
    "schema": {"type": "string", "format": "binary"},
    "description": "per point: float64 timestamp, then the model's C channels as float32, "
    "little-endian; `model` as a query parameter",
}


@contextlib.contextmanager
def counted(services: ServicesDep) -> Iterator[None]:
    """Count a body refused before ingest (the ingest path counts its own refusals)."""
    try:
        yield
    except ServiceError as exc:
        services.metrics.reject(exc.kind)
        raise


@router.post(
    "/v1/streams/{stream_id}/points",
    response_model=PointsResult,
    responses=_ERRORS,
    openapi_extra=json_body(PointsRequest, {BINARY_TYPE: _BINARY_DOC}),
)
async def post_points(
    stream_id: IngestStream,
    request: Request,
    services: ServicesDep,
    model: Annotated[
        str | None, Query(pattern=MODEL_NAME_PATTERN, description="model (binary bodies)")
    ] = None,
) -> OrjsonResponse:
    """Score a batch of one stream's points, oldest first. Resent points (same time as one
    accepted recently) are acknowledged as duplicates; the results are persisted before this
    answers. A new stream is created on its first point, bound to `model` (or the only model)."""
    body = await request.body()
    if request.headers.get("content-type", "").startswith(BINARY_TYPE):
        cols = PointColumns(np.empty(0), binary=body)
    else:
        with counted(services):
            named, cols = await stream_points_async(body)
        model = named if named is not None else model
    (result,) = await services.ingestor.ingest([PointBatch(stream_id, model, cols)])
    return OrjsonResponse(result)


@router.post(
    "/v1/points",
    response_model=BatchResult,
    responses=_ERRORS,
    openapi_extra=json_body(BatchRequest),
)
async def post_batch(request: Request, services: ServicesDep, who: Ingester) -> OrjsonResponse:
    """Score points of many streams with one model call per model; all or nothing."""
    body = await request.body()
    with counted(services):
        services.ingestor.precount_streams(body)
        parsed = await batch_points_async(body)
        for i, (sid, *_) in enumerate(parsed):
            who.require_stream(sid, f"streams[{i}].stream_id")
    batches = [PointBatch(sid, model, cols, field) for sid, model, cols, field in parsed]
    return OrjsonResponse({"results": await services.ingestor.ingest(batches)})


@router.get(
    "/v1/streams/{stream_id}/points",
    response_model=PointHistory,
    responses=documented(
        {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}, 401, 403, 404, 422, 503
    ),
)
async def get_points(
    stream_id: ReadStream,
    services: ServicesDep,
    start: Annotated[
        float | None, Query(alias="from", description="first timestamp (inclusive)")
    ] = None,
    end: Annotated[float | None, Query(alias="to", description="end timestamp (exclusive)")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_POINTS)] = 1000,
    fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Response:
    """The stream's recorded history (its last TAD_HISTORY_POINTS accepted points, as they
    arrived), oldest first, a page at a time: follow `next_cursor` (JSON) or the
    `X-Next-Cursor` header (CSV) until there is none."""
    page = await history_page(services, stream_id, start, end, cursor, limit)
    if fmt == "csv":
        headers = {} if page.next_cursor is None else {"X-Next-Cursor": page.next_cursor}
        return Response(page.as_csv(), media_type="text/csv", headers=headers)
    return OrjsonResponse(page.as_json())
