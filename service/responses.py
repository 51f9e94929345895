"""HTTP responses: orjson bodies, and one error shape for every refusal.

Every error a route can return is declared in its OpenAPI `responses` through `errors(...)`, and
the exception handlers here produce exactly that `ErrorResponse` body, including for FastAPI's
own validation errors (400 for a body that is not JSON, 422 for one of the wrong shape).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from service.errors import BadRequest, InvalidPoint, ServiceError, Unavailable
from service.metrics import ServiceMetrics
from service.schemas import ErrorResponse
from service.state.store import StoreUnavailable

_DESCRIPTIONS = {
    400: "Malformed request (body is not JSON, or a bad header)",
    401: "Missing or invalid API key",
    403: "The key's role or tenant does not cover this request",
    404: "Unknown stream or model",
    409: "Stream bound to another model or channel schema",
    413: "Request body or batch too large",
    415: "Unsupported content type",
    422: "Invalid point or parameter; `field` names it",
    429: "Too many requests, or the job queue is full; retry after Retry-After",
    503: "State store unavailable or not ready; nothing was acknowledged, retry",
}


class OrjsonResponse(JSONResponse):
    """JSON via orjson; NaN and infinities become null (the API's 'no value'). A JSONResponse
    subclass, so FastAPI documents each route's response model in OpenAPI."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def json_body(model: type[BaseModel], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`openapi_extra` documenting a request body the route reads itself (see
    `add_body_schemas` for the referenced component)."""
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}
    return {"requestBody": {"required": True, "content": content | (extra or {})}}


def add_body_schemas(schema: dict[str, Any], models: Sequence[type[BaseModel]]) -> None:
    """Put the JSON schemas of `json_body` models (and what they use) into components."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in body.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components.setdefault(model.__name__, body)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given error statuses."""
    return {c: {"model": ErrorResponse, "description": _DESCRIPTIONS[c]} for c in codes}


def documented(
    extra: dict[int | str, dict[str, Any]], *codes: int
) -> dict[int | str, dict[str, Any]]:
    """`extra` responses (a success variant) plus the given error statuses."""
    return extra | errors(*codes)


def field_of(loc: Sequence[Any]) -> str:
    """('body', 'points', 3, 'values', 'list[…]', 1) → 'points[3].values[1]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("body", "query", "path", "header") and not out:
            continue
        elif "[" in str(part) or "(" in str(part):
            continue  # pydantic's union-member tags, e.g. 'list[nullable[float]]'
        else:
            out += ("." if out else "") + str(part)
    return out


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def error_response(exc: ServiceError) -> OrjsonResponse:
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Unavailable) else None
    return OrjsonResponse(exc.body(), status_code=exc.status, headers=headers)


def install_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    """Map every exception that reaches a route's edge to the documented error body."""

    async def service_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return error_response(exc)

    async def store_down(_: Request, exc: Exception) -> Response:
        metrics.store_errors.inc()
        return error_response(Unavailable(f"state store unavailable ({exc}); retry"))

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errs = exc.errors()
        first = errs[0] if errs else {"loc": (), "msg": "invalid request", "type": ""}
        field = field_of(first.get("loc", ()))
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        err: ServiceError
        if first.get("type") == "json_invalid":
            err = BadRequest(f"body is not valid JSON: {msg}", field="body", kind="malformed")
        else:
            err = InvalidPoint(msg, field=field or None, kind="malformed")
        if request.url.path.endswith("/points"):
            metrics.reject("malformed")
        return error_response(err)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # FastAPI could not parse the body (e.g. nested too deep)
            if request.url.path.endswith("/points"):
                metrics.reject("malformed")
            return error_response(BadRequest(str(exc.detail), field="body", kind="malformed"))
        body = {
            "error": {"type": "http", "message": str(exc.detail), "field": None, "stream_id": None}
        }
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route's methods
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return OrjsonResponse(body, status_code=exc.status_code, headers=headers)

    async def gone(_: Request, exc: Exception) -> Response:
        return Response(status_code=400)  # the client left mid-body; nobody reads this

    app.add_exception_handler(ClientDisconnect, gone)
    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(StoreUnavailable, store_down)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
