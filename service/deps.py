"""The app's long-lived parts, and the FastAPI dependency aliases routes use to reach them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Query, Request, Security
from starlette.requests import HTTPConnection

from service.auth import KeyScope, Role, api_key_header, check_connection
from service.errors import InvalidPoint, Unavailable
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
T = TypeVar("T")


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
    api_keys: list[KeyScope]  # empty: auth off
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


@dataclass(frozen=True)
class Page:
    """A list endpoint's page request: `?limit=` (at most MAX_PAGE) and `?cursor=` (from the
    previous page's `next_cursor`)."""

    limit: int
    cursor: str | None

    async def read(
        self,
        fetch: Callable[[str | None, int, str], Awaitable[tuple[T, str | None]]],
        prefix: str = "",
    ) -> tuple[T, str | None]:
        """One page from a store method (entries starting with `prefix`); a cursor the store
        never handed out is a 422."""
        try:
            return await fetch(self.cursor, self.limit, prefix)
        except ValueError as exc:
            raise InvalidPoint(str(exc), field="cursor", kind="invalid") from None


MAX_PAGE = 10_000


def page_of(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="most entries a page")] = 1000,
    cursor: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z0-9._:-]{1,128}$", description="next_cursor of the last page"),
    ] = None,
) -> Page:
    return Page(limit, cursor)


PageDep = Annotated[Page, Depends(page_of)]


def _owned(need: Role) -> Callable[..., Awaitable[str]]:
    """A dependency: the path's stream id, after checking the key's role (at least `need`) and
    tenant (a tenant key's streams are TENANT:…; service.auth)."""

    async def dependency(
        request: Request,
        stream_id: StreamIdPath,
        _: Annotated[str | None, Security(api_key_header)] = None,
    ) -> str:
        check_connection(request, need=need).require_stream(stream_id)
        return stream_id

    return dependency


ReadStream = Annotated[str, Depends(_owned("read"))]
IngestStream = Annotated[str, Depends(_owned("ingest"))]
AdminStream = Annotated[str, Depends(_owned("admin"))]
