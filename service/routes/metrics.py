"""`/metrics` for Prometheus; per-stream gauges are read from the shared store at scrape time."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.auth import ApiKey, Reader
from service.deps import ServicesDep
from service.errors import Forbidden
from service.responses import documented
from service.state.store import StoreUnavailable

router = APIRouter(tags=["metrics"], dependencies=[ApiKey])


@router.get(
    "/metrics",
    response_class=Response,
    responses=documented(
        {200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}}, 401, 403
    ),
)
async def metrics(services: ServicesDep, who: Reader) -> Response:
    """Prometheus exposition. If the store is down the last per-stream snapshot is kept (alerts
    do not flap) and `tad_store_up` is 0. It names every stream, so a tenant key is refused."""
    if who.tenant is not None:
        raise Forbidden(
            f"/metrics names every tenant's streams; key of tenant {who.tenant!r} refused "
            "(scrape with an unscoped read key)"
        )
    m = services.metrics
    served = services.ingestor.served_streams()
    try:
        await m.streams.update(services.store.gauge_chunks(), served)  # loop let in between
        m.store_up.set(1)
    except StoreUnavailable:
        m.store_up.set(0)
        m.store_errors.inc()
    body = await m.scrape(None)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
