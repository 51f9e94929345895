"""The FastAPI application: `create_app(settings)` wires store, models, scoring and routes.

Nothing is read from the environment at import; `create_app()` without settings reads it then
(and `uvicorn service.app:create_app --factory` works). Models are loaded in the lifespan, so a
broken model directory shows up as not-ready rather than a crash loop, and SIGHUP rescans it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from service.auth import KeyScope, redact_server_logs
from service.clustering.jobs import ClusteringJobs
from service.deps import Services
from service.errors import Unavailable
from service.ingest.pipeline import Ingestor
from service.ingest.scoring import ScoringRuntime
from service.ingest.stream_cache import StreamCache, release_idle_caches
from service.ingest.streams import StreamBinder, StreamLocks
from service.logfilters import quiet_client_errors
from service.metrics import ServiceMetrics
from service.middleware.body_limit import PathBodyLimit
from service.middleware.rate_limit import RateLimit, TokenBuckets
from service.registry import ModelRegistry
from service.responses import OrjsonResponse, add_body_schemas, install_handlers
from service.routes import (
    alarms,
    clustering,
    episodes,
    health,
    metrics,
    models,
    points,
    streams,
    training,
    websocket,
)
from service.schemas import BatchRequest, PointsRequest
from service.settings import Settings, load_settings
from service.state.store import MemoryStore, StateStore
from service.training.jobs import TrainingJobs
from service.training.refit import RefitScheduler

if TYPE_CHECKING:
    from service.mqtt.bridge import MqttBridge

log = logging.getLogger(__name__)

# Python's default (700, 10, 10) runs a young collection every ~7 WebSocket messages and a full
# one (every object of a thousand connections) every few thousand; bench/perf.py, 1,000
# connections × 1 point: 5.1k → 5.8k messages/s and p99 241 → 169 ms with these.
GC_THRESHOLDS = (20_000, 50, 100)


def make_store(settings: Settings) -> StateStore:
    """Redis when TAD_REDIS_URL is set, else process memory (state lost on restart)."""
    if settings.redis_url:
        from service.state.redis_store import RedisStore

        return RedisStore(
            _with_pool_size(settings.redis_url, settings.redis_max_connections),
            settings.redis_prefix,
            settings.alarm_history,
            settings.store_timeout_s,
            settings.episode_budget,
        )
    return MemoryStore(settings.alarm_history, settings.episode_budget)


def _with_pool_size(url: str, size: int) -> str:
    """The Redis URL with `max_connections` (redis-py reads it from the query string) unless the
    URL sets its own: redis-py's default pool of 100 refuses the 101st concurrent request."""
    query = urlsplit(url).query
    if any(k == "max_connections" for k, _ in parse_qsl(query, keep_blank_values=True)):
        return url
    return f"{url}{'&' if query else '?'}max_connections={size}"


def build_services(settings: Settings, metrics: ServiceMetrics) -> Services:
    store = make_store(settings)
    registry = ModelRegistry(
        settings.model_dir, settings.device, settings.onnx_threads, settings.incremental
    )
    runtime = ScoringRuntime(
        store,
        settings.scoring_threads,
        settings.batch_window_ms / 1000,
        settings.batch_max_points,
        metrics.scoring_latency.observe,
    )
    binder = StreamBinder(registry, settings.auto_create_streams)
    locks = StreamLocks()
    # the memory store holds every stream anyway: caching them all costs nothing more
    cache = StreamCache(None if store.kind == "memory" else settings.stream_cache_size)
    ingestor = Ingestor(settings, binder, store, runtime, metrics, locks, cache)
    return Services(
        settings=settings,
        registry=registry,
        store=store,
        metrics=metrics,
        runtime=runtime,
        binder=binder,
        locks=locks,
        ingestor=ingestor,
        cache=cache,
        api_keys=[KeyScope.parse(k) for k in settings.key_entries()],
    )


async def rescan_models(period_s: float, reload: Callable[[], Awaitable[None]]) -> None:
    """Reload the model directory every `period_s` (new versions written by a worker on a
    shared volume; a failed reload is logged by `reload` and tried again next time)."""
    while True:
        await asyncio.sleep(period_s)
        await reload()


def _start_mqtt(settings: Settings, services: Services) -> MqttBridge | None:
    """The MQTT subscriber when TAD_MQTT_URL is set (docs/mqtt.md); paho is imported only then."""
    if not settings.mqtt_url:
        return None
    from service.mqtt.bridge import MqttBridge
    from service.mqtt.metrics import MqttMetrics

    holder: list[MqttBridge] = []
    metrics = MqttMetrics(services.metrics.registry, lambda: holder[0].oldest_pending_s())
    bridge = MqttBridge(settings, services.ingestor, metrics)
    holder.append(bridge)
    bridge.start()
    return bridge


def _on_sighup(services: Services) -> bool:
    """Reload models on SIGHUP where the loop can take signals (main thread, POSIX)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(services.reload()))
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        return False
    return True


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    metrics_ = ServiceMetrics(settings.metrics_top_streams, settings.metrics_max_alarm_streams)
    redact_server_logs()
    quiet_client_errors()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings, metrics_)
        app.state.services = services
        app.state.clustering = ClusteringJobs.from_settings(settings)
        app.state.training = TrainingJobs(
            app.state.clustering, settings.model_dir, services.registry
        )
        loop = asyncio.get_running_loop()

        async def load_trained() -> None:
            try:
                await services.reload()
            except Unavailable as exc:
                log.error("a trained bundle was not loaded: %s", exc)

        def reload_after_training(meta: dict[str, Any], _: dict[str, Any]) -> None:
            """A training job wrote a bundle: load it (called from the runner's thread)."""
            if meta.get("task") == "training":
                asyncio.run_coroutine_threadsafe(load_trained(), loop)

        app.state.clustering.runner.on_success = reload_after_training
        app.state.clustering.start()
        try:
            report = await services.reload()
            refused = len(report.refused)
        except Unavailable as exc:  # e.g. no model directory yet: start, not ready
            log.error("no models loaded: %s", exc)
            refused = 0
        log.info(
            "store=%s models=%s refused=%d",
            services.store.kind,
            sorted(services.registry.active),
            refused,
        )
        hup = _on_sighup(services)
        # the objects of start-up (modules, models, schemas) live as long as the process: out
        # of the collector's sight, a full collection no longer stalls every connection
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        sweeper = asyncio.create_task(
            release_idle_caches(services.cache, services.locks.held, settings.embedding_idle_s)
        )
        rescan = (
            asyncio.create_task(rescan_models(settings.model_rescan_s, load_trained))
            if settings.model_rescan_s > 0
            else None
        )
        mqtt = _start_mqtt(settings, services)
        refits = (
            asyncio.create_task(
                RefitScheduler(services, app.state.training, metrics_.registry).run(
                    settings.refit_check_s
                )
            )
            if settings.refit_check_s > 0
            else None
        )
        try:
            yield
        finally:
            if mqtt is not None:
                await mqtt.stop()
            sweeper.cancel()
            if refits is not None:
                refits.cancel()
            if rescan is not None:
                rescan.cancel()
            if hup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await asyncio.to_thread(app.state.clustering.stop)
            services.runtime.close()
            await services.store.close()

    # FastAPIOffline: a FastAPI whose /docs and /redoc load no asset from a CDN
    make = FastAPIOffline if settings.docs else _without_docs
    app = make(
        title="TAD streaming anomaly detection",
        version="0.1.0",
        summary="CCM-TAD scoring of multivariate sensor streams, with alarms and metrics",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    install_handlers(app, metrics_)

    def count_oversized(path: str) -> None:
        if path.endswith("/points"):
            metrics_.reject("too_large")

    app.add_middleware(
        PathBodyLimit,
        max_bytes=settings.max_body_bytes,
        clustering_max_bytes=settings.clustering_max_bytes,
        on_reject=count_oversized,
    )
    routers = (
        health,
        models,
        streams,
        points,
        alarms,
        episodes,
        websocket,
        metrics,
        clustering,
        training,
    )
    for module in routers:
        app.include_router(module.router)
    _document_bodies(app)
    _add_client_limits(app, settings, metrics_)
    return app


def _without_docs(**kwargs: Any) -> FastAPI:
    """TAD_DOCS=false: no /docs, /redoc or /openapi.json."""
    return FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **kwargs)


API_DESCRIPTION = """
Points go in over HTTP or WebSocket; every point gets a score, p-value, evidence, accumulated
evidence and alarm flag back, in order, and alarm events when an alarm opens or closes.

**HTTP** — `POST /v1/streams/{id}/points` with
`{"points": [{"timestamp": 1764547200.0, "values": [0.1, 0.5, 0.4, 0.2]}]}` (values in the
model's channel order, or `"values": {"temperature": 0.1, ...}` by name; `"seq": n` instead of a
timestamp for rows without a clock). `POST /v1/points` takes
`{"streams": [{"stream_id": "pump-7", "points": [...]}]}`.

**WebSocket** (not listed below: OpenAPI has no WebSocket operations)

* `/v1/streams/{id}/ws` — each text message is one point `{"timestamp": .., "values": ..}`, a
  list of points, or `{"points": [...]}` (optionally with `"model"`); each is answered with the
  same body as the HTTP route, before the next message is read.
* `/v1/ws` — each message is the `POST /v1/points` body.
* The API key goes in the `X-API-Key` header of the handshake.
* A refusal sends `{"error": {"type", "field", "message"}}`, then closes: **1003** binary frame,
  **1007** invalid data (malformed JSON, a bad point, out of order), **1008** policy (API key,
  unknown stream or model, conflict), **1009** message too big, **1013** try again later (store
  unavailable, contention, rate limit: resend the same message). Everything answered before the
  close is persisted.
"""


def _document_bodies(app: FastAPI) -> None:
    """The point routes read their bodies themselves (`service.ingest.wire`); their schemas go into
    the OpenAPI components here."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        schema = generate()
        if first:
            add_body_schemas(schema, [PointsRequest, BatchRequest])
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_client_limits(app: FastAPI, settings: Settings, metrics_: ServiceMetrics) -> None:
    """Per-client rate limit (off unless TAD_RATE_LIMIT_PER_S > 0), then CORS outermost (off
    unless TAD_CORS_ORIGINS is set), so refusals still carry the CORS headers a browser needs."""
    if settings.rate_limit_per_s > 0:
        exempt = ("/healthz", "/readyz")
        app.add_middleware(
            RateLimit,
            buckets=TokenBuckets(settings.rate_limit_per_s, settings.rate_limit_burst),
            api_keys=[KeyScope.parse(k).secret for k in settings.key_entries()],
            exempt=exempt,
            on_limit=lambda action: metrics_.rate_limited.labels(action).inc(),
        )
        _document_429(app, exempt)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type"],
            expose_headers=["Retry-After"],
            allow_credentials=False,
            max_age=600,
        )


def _document_429(app: FastAPI, exempt: tuple[str, ...]) -> None:
    """Add the rate limit's 429 to every operation it can answer (all but the probes)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        first = app.openapi_schema is None
        schema = generate()
        if first:
            for path, operations in schema.get("paths", {}).items():
                for op in operations.values() if path not in exempt else ():
                    op.setdefault("responses", {}).setdefault("429", RATE_LIMITED_RESPONSE)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


RATE_LIMITED_RESPONSE = {
    "description": "Over the client's rate limit (TAD_RATE_LIMIT_PER_S); retry after "
    "Retry-After seconds",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
}
