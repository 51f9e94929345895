"""Liveness and readiness, open without an API key (orchestrators probe them)."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import ServicesDep
from service.responses import OrjsonResponse
from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> OrjsonResponse:
    """The process is up and serving HTTP."""
    return OrjsonResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "no model serving, or store unreachable"}},
)
async def readyz(services: ServicesDep) -> OrjsonResponse:
    """Ready when at least one model serves and the state store answers."""
    models_ok, store_ok = await services.ready()
    ok = models_ok and store_ok
    body = {
        "status": "ok" if ok else "unavailable",
        "models": len(services.registry.active),
        "store": services.store.kind,
        "store_ok": store_ok,
    }
    return OrjsonResponse(body, status_code=200 if ok else 503)
