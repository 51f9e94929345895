"""Optional API keys: `X-API-Key` (or `Authorization: Bearer`, what Prometheus sends) on HTTP,
the same headers or `?api_key=` on WebSockets (browsers cannot set WebSocket headers).

Keys come from `TAD_API_KEYS`; with none configured the API is open. Every configured key is
compared with `hmac.compare_digest`, without stopping at the first match, so timing says
nothing about the keys; a key is never logged or echoed.

Scopes (issue 25): an entry `ROLE[@TENANT]:SECRET` gives its key a role and, optionally, a
tenant; a bare `SECRET` is an admin of everything (the default configuration: one key, all
rights).

* roles — `read` (every GET, /metrics), `ingest` (read + points over HTTP and WebSocket,
  creating a stream with `PUT` without α/h/budget, submitting and cancelling clustering
  jobs), `admin` (everything: model reload, stream delete, re-baseline, α/h/budget). Too weak
  a role: 403.
* tenant — the key's streams are those named `TENANT:…`: it can read, write and list only
  those (403 naming the rule for any other id; lists and open alarms show only its own);
  `/metrics` names every stream, so it is refused to tenant keys (scrape with an unscoped
  `read` key); clustering job ids are 128-bit random, so a job is seen by whoever submitted
  it.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.requests import HTTPConnection

from service.errors import Forbidden, Unauthorized

Role = Literal["read", "ingest", "admin"]
ROLES: tuple[Role, ...] = ("read", "ingest", "admin")
_SCOPED = re.compile(r"^(read|ingest|admin)(?:@([A-Za-z0-9_-]{1,64}))?:(.+)$", re.S)


@dataclass(frozen=True)
class KeyScope:
    """One configured key: its secret and what it may do."""

    secret: bytes
    role: Role = "admin"
    tenant: str | None = None

    @classmethod
    def parse(cls, entry: str) -> KeyScope:
        """`ROLE[@TENANT]:SECRET` or a bare `SECRET` (admin of everything).

        >>> KeyScope.parse("ingest@plant-a:s3cret")
        KeyScope(secret=b's3cret', role='ingest', tenant='plant-a')
        >>> KeyScope.parse("s3cret").role
        'admin'
        """
        m = _SCOPED.match(entry)
        if m is None:
            return cls(entry.encode())
        role, tenant, secret = m.groups()
        return cls(secret.encode(), ROLES[ROLES.index(role)], tenant)


@dataclass(frozen=True)
class Principal:
    """Who is asking: the matched key's role and tenant (auth off: an admin of everything)."""

    role: Role = "admin"
    tenant: str | None = None

    def allows(self, need: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(need)

    def owns(self, stream_id: str) -> bool:
        return self.tenant is None or stream_id.startswith(f"{self.tenant}:")

    def require_stream(self, stream_id: str, field: str = "stream_id") -> None:
        """Forbidden unless the stream is this key's (a tenant's streams are TENANT:…)."""
        if not self.owns(stream_id):
            raise Forbidden(
                f"stream {stream_id!r} is outside this key's tenant {self.tenant!r} (its streams "
                f"are named {self.tenant}:…)",
                field=field,
                stream_id=stream_id,
            )

    def require(self, need: Role) -> None:
        if not self.allows(need):
            raise Forbidden(f"this key's role is {self.role}; this needs {need}")


ANYONE = Principal()

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


def match_scope(scopes: Sequence[KeyScope], given: str | None) -> KeyScope | None:
    """The configured key the presented one equals, comparing with every key (constant time)."""
    if given is None:
        return None
    raw = given.encode("utf-8", errors="replace")
    found = None
    for scope in scopes:
        if hmac.compare_digest(scope.secret, raw):
            found = scope
    return found


def check_connection(
    conn: HTTPConnection, allow_query: bool = False, need: Role = "read"
) -> Principal:
    """The connection's principal; Unauthorized without a configured key (auth on), Forbidden
    when its role is below `need`."""
    scopes: list[KeyScope] = conn.app.state.services.api_keys
    if not scopes:
        return ANYONE
    scope = match_scope(scopes, presented_key(conn, allow_query))
    if scope is None:
        raise Unauthorized("missing or invalid API key (X-API-Key header)")
    who = Principal(scope.role, scope.tenant)
    who.require(need)
    return who


def needs(role: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency: the request's principal, at least `role`."""

    async def dependency(
        request: Request, _: Annotated[str | None, Security(api_key_header)] = None
    ) -> Principal:
        return check_connection(request, need=role)

    return dependency


require_api_key = needs("read")
ApiKey = Depends(require_api_key)
IngestKey = Depends(needs("ingest"))
AdminKey = Depends(needs("admin"))
Reader = Annotated[Principal, Depends(needs("read"))]
Ingester = Annotated[Principal, Depends(needs("ingest"))]

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
