"""Streams: create or reconfigure, describe, list, delete."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.auth import ApiKey, Ingester, Reader
from service.deps import AdminStream, IngestStream, PageDep, ReadStream, ServicesDep
from service.ingest.stream_admin import (
    configure_stream,
    delete_stream,
    describe_stream,
    rebaseline_stream,
)
from service.responses import OrjsonResponse, documented, errors
from service.schemas import Rebaseline, StreamCreate, StreamInfo, StreamList

router = APIRouter(prefix="/v1/streams", tags=["streams"], dependencies=[ApiKey])


@router.get("", response_model=StreamList, responses=errors(401, 403, 422, 503))
async def list_streams(services: ServicesDep, page: PageDep, who: Reader) -> OrjsonResponse:
    """Stream ids, a page at a time: follow `next_cursor` until it is null (a tenant key sees
    its own streams only)."""
    prefix = f"{who.tenant}:" if who.tenant else ""
    ids, nxt = await page.read(services.store.stream_page, prefix)
    return OrjsonResponse({"streams": ids, "next_cursor": nxt})


@router.put(
    "/{stream_id}",
    response_model=StreamInfo,
    responses=documented(
        {201: {"model": StreamInfo, "description": "Created"}},
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        503,
    ),
)
async def put_stream(
    stream_id: IngestStream, body: StreamCreate, services: ServicesDep, who: Ingester
) -> OrjsonResponse:
    """Create the stream bound to a model (the only serving one if none is named), or change
    an existing stream's α/h or budget, or move it to another model of the same channels
    (admin rights): its last points and recorded history stay, so it scores at once; its
    evidence and α/h restart, an open alarm closes, and the switch is listed in
    `model_history`. Points posted naming another model than the stream's are still a 409."""
    if body.alpha is not None or body.threshold is not None or body.false_alarms_per_10k:
        who.require("admin")
    info, created = await configure_stream(
        services, stream_id, body, allow_switch=lambda: who.require("admin")
    )
    return OrjsonResponse(info, status_code=201 if created else 200)


@router.post(
    "/{stream_id}/rebaseline",
    response_model=StreamInfo,
    responses=errors(400, 401, 403, 404, 409, 413, 422, 503),
)
async def rebaseline(
    stream_id: AdminStream, services: ServicesDep, body: Rebaseline | None = None
) -> OrjsonResponse:
    """Tell the stream that its current behaviour is the new normal: its scores are shifted so
    the median of its last `points` scores maps onto the calibration median, its accumulated
    evidence and drift level restart at 0, and an open alarm closes (recorded in its alarm
    history). Persisted in the store with the rest of the stream's state."""
    body = body or Rebaseline(points=500)
    return OrjsonResponse(await rebaseline_stream(services, stream_id, body))


@router.get(
    "/{stream_id}", response_model=StreamInfo, responses=errors(401, 403, 404, 409, 422, 503)
)
async def get_stream(stream_id: ReadStream, services: ServicesDep) -> OrjsonResponse:
    return OrjsonResponse(await describe_stream(services, stream_id))


@router.delete(
    "/{stream_id}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 422, 503),
)
async def remove_stream(stream_id: AdminStream, services: ServicesDep) -> Response:
    """Forget the stream's state and alarm history."""
    await delete_stream(services, stream_id)
    return Response(status_code=204)
