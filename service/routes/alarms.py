"""Alarms: one stream's history (opened and closed events) and open alarms across streams."""

from __future__ import annotations

import orjson
from fastapi import APIRouter

from service.auth import ApiKey, Reader
from service.deps import PageDep, ReadStream, ServicesDep
from service.ingest.stream_admin import alarm_history
from service.responses import OrjsonResponse, errors
from service.schemas import AlarmHistory, OpenAlarms

router = APIRouter(tags=["alarms"], dependencies=[ApiKey])


@router.get(
    "/v1/streams/{stream_id}/alarms",
    response_model=AlarmHistory,
    responses=errors(401, 403, 404, 422, 503),
)
async def stream_alarms(stream_id: ReadStream, services: ServicesDep) -> OrjsonResponse:
    """The stream's alarm events, oldest first (capped at TAD_ALARM_HISTORY)."""
    return OrjsonResponse(await alarm_history(services, stream_id))


@router.get("/v1/alarms", response_model=OpenAlarms, responses=errors(401, 403, 422, 503))
async def open_alarms(services: ServicesDep, page: PageDep, who: Reader) -> OrjsonResponse:
    """Alarms open now, across all streams (shared by every replica through the store), a
    page at a time: follow `next_cursor` until it is null (a tenant key sees its own)."""
    prefix = f"{who.tenant}:" if who.tenant else ""
    raw, nxt = await page.read(services.store.open_alarm_page, prefix)
    return OrjsonResponse({"alarms": [orjson.loads(a) for a in raw], "next_cursor": nxt})
