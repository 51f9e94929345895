"""Alarms: one stream's history (opened and closed events) and open alarms across streams."""

from __future__ import annotations

import orjson
from fastapi import APIRouter

from service.auth import ApiKey
from service.deps import PageDep, ServicesDep, StreamIdPath
from service.ingest.stream_admin import alarm_history
from service.responses import OrjsonResponse, errors
from service.schemas import AlarmHistory, OpenAlarms

router = APIRouter(tags=["alarms"], dependencies=[ApiKey])


@router.get(
    "/v1/streams/{stream_id}/alarms",
    response_model=AlarmHistory,
    responses=errors(401, 404, 422, 503),
)
async def stream_alarms(stream_id: StreamIdPath, services: ServicesDep) -> OrjsonResponse:
    """The stream's alarm events, oldest first (capped at TAD_ALARM_HISTORY)."""
    return OrjsonResponse(await alarm_history(services, stream_id))


@router.get("/v1/alarms", response_model=OpenAlarms, responses=errors(401, 422, 503))
async def open_alarms(services: ServicesDep, page: PageDep) -> OrjsonResponse:
    """Alarms open now, across all streams (shared by every replica through the store), a
    page at a time: follow `next_cursor` until it is null."""
    raw, nxt = await page.read(services.store.open_alarm_page)
    return OrjsonResponse({"alarms": [orjson.loads(a) for a in raw], "next_cursor": nxt})
