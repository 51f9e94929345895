"""The app's long-lived parts, and the FastAPI dependency aliases routes use to reach them."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path
from starlette.requests import HTTPConnection

from service.errors import Unavailable
from service.ingest.pipeline import Ingestor
from service.ingest.scoring import ScoringRuntime
from service.ingest.stream_cache import StreamCache
from service.ingest.streams import StreamBinder, StreamLocks
from service.metrics import ServiceMetrics
from service.registry import ModelDirError, ModelRegistry, ScanReport
from service.schemas import STREAM_ID_PATTERN
from service.settings import Settings
from service.state.store import StateStore

log = logging.getLogger(__name__)


@dataclass(eq=False, kw_only=True)
class Services:
    """Everything a request needs; built once per app in its lifespan."""

    settings: Settings
    registry: ModelRegistry
    store: StateStore
    metrics: ServiceMetrics
    runtime: ScoringRuntime
    binder: StreamBinder
    locks: StreamLocks
    ingestor: Ingestor
    cache: StreamCache  # the ingestor's; the idle sweeper releases its embedding caches
    api_keys: list[bytes]
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def reload(self) -> ScanReport:
        """Rescan the model directory in a thread; one reload at a time."""
        limit = self.settings.reload_timeout_s
        async with self.reload_lock:
            try:
                report = await asyncio.wait_for(asyncio.to_thread(self.registry.scan), limit)
            except ModelDirError as exc:
                raise Unavailable(str(exc), field="model_dir", kind="model_dir") from exc
            except TimeoutError as exc:  # the thread may go on; the next reload is not blocked
                raise Unavailable(
                    f"reading the model directory took longer than {limit} s "
                    "(TAD_RELOAD_TIMEOUT_S); the running versions stay",
                    field="model_dir",
                    kind="reload_timeout",
                ) from exc
        self.metrics.set_models(self.registry.active.values())
        if report.refused:
            self.metrics.bundles_refused.inc(len(report.refused))
        for change in report.changed:
            log.info("model version changed: %s", change)
        return report

    async def ready(self) -> tuple[bool, bool]:
        """(models serving, store reachable)."""
        store_ok = await self.store.ping()
        self.metrics.store_up.set(1 if store_ok else 0)
        return bool(self.registry.active), store_ok


def get_services(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
StreamIdPath = Annotated[
    str, Path(pattern=STREAM_ID_PATTERN, description="letters, digits and . _ : - (≤128)")
]
