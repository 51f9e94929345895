"""Optional API keys: `X-API-Key` (or `Authorization: Bearer`, what Prometheus sends) on HTTP,
the same headers or `?api_key=` on WebSockets (browsers cannot set WebSocket headers).

Keys come from `TAD_API_KEYS`; with none configured the API is open. Every configured key is
compared with `hmac.compare_digest`, without stopping at the first match, so timing says
nothing about the keys; a key is never logged or echoed.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.requests import HTTPConnection

from service.errors import Unauthorized

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="one of the keys in TAD_API_KEYS"
)


def key_matches(configured: list[bytes], given: str | None) -> bool:
    if given is None:
        return False
    raw = given.encode("utf-8", errors="replace")
    ok = False
    for key in configured:
        ok |= hmac.compare_digest(key, raw)
    return ok


def presented_key(conn: HTTPConnection, allow_query: bool = False) -> str | None:
    key = conn.headers.get("x-api-key")
    if key is None:
        auth = conn.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
    if key is None and allow_query:
        key = conn.query_params.get("api_key")
    return key


def check_connection(conn: HTTPConnection, allow_query: bool = False) -> None:
    """Raise Unauthorized unless auth is off or the connection presents a configured key."""
    keys: list[bytes] = conn.app.state.services.api_keys
    if keys and not key_matches(keys, presented_key(conn, allow_query)):
        raise Unauthorized("missing or invalid API key (X-API-Key header)")


async def require_api_key(
    request: Request, _: Annotated[str | None, Security(api_key_header)] = None
) -> None:
    check_connection(request)


ApiKey = Depends(require_api_key)

_QUERY_KEY = re.compile(r"(api_key=)[^&\s\"']+")


class RedactApiKeys(logging.Filter):
    """Blank `?api_key=` in log lines: uvicorn logs WebSocket paths with their query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "api_key=" in record.msg:
            record.msg = _QUERY_KEY.sub(r"\1***", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _QUERY_KEY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def redact_server_logs() -> None:
    """Install the filter on uvicorn's loggers (once per process)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactApiKeys) for f in logger.filters):
            logger.addFilter(RedactApiKeys())
