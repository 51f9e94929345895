"""Service errors, each knowing its HTTP status and WebSocket close code.

The detector core raises precise `PointError`s; this module is the one place that decides how
they look to a client, so HTTP and WebSocket answer the same mistake the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

from detector.errors import ChannelCountError, NonFiniteValueError, OutOfOrderError, PointError

# RFC 6455 close codes
WS_UNSUPPORTED = 1003
WS_INVALID_DATA = 1007
WS_POLICY = 1008
WS_TOO_BIG = 1009
WS_INTERNAL = 1011
WS_TRY_AGAIN = 1013


class ServiceError(Exception):
    """A request the service refuses; `kind` is the machine-readable reason."""

    status: ClassVar[int] = 400
    ws_code: ClassVar[int] = WS_INVALID_DATA
    default_kind: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        stream_id: str | None = None,
        kind: str | None = None,
        points: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.stream_id = stream_id
        self.kind = kind or self.default_kind
        self.points = points  # how many points this refusal rejects, for metrics

    def body(self) -> dict[str, Any]:
        """The JSON error body shared by HTTP responses and WebSocket error frames."""
        return {
            "error": {
                "type": self.kind,
                "message": self.message,
                "field": self.field,
                "stream_id": self.stream_id,
            }
        }

    def close_reason(self) -> str:
        """A WebSocket close reason: at most 123 bytes of UTF-8."""
        text = f"{self.kind}: {self.field}: {self.message}" if self.field else self.message
        raw = text.encode()[:123]
        return raw.decode("utf-8", errors="ignore")


class BadRequest(ServiceError):
    """Malformed body (not JSON, wrong types)."""


class InvalidPoint(ServiceError):
    status = 422
    default_kind = "invalid"


class NotFound(ServiceError):
    status = 404
    ws_code = WS_POLICY
    default_kind = "not_found"


class Conflict(ServiceError):
    status = 409
    ws_code = WS_POLICY
    default_kind = "conflict"


class TooLarge(ServiceError):
    status = 413
    ws_code = WS_TOO_BIG
    default_kind = "too_large"


class UnsupportedMedia(ServiceError):
    """A body of a content type the route does not take."""

    status = 415
    default_kind = "unsupported_media_type"


class Unauthorized(ServiceError):
    status = 401
    ws_code = WS_POLICY
    default_kind = "unauthorized"


class Forbidden(ServiceError):
    """A valid key whose role or tenant does not cover the request."""

    status = 403
    ws_code = WS_POLICY
    default_kind = "forbidden"


class Unavailable(ServiceError):
    """The state store cannot be reached; nothing was acknowledged, retry later."""

    status = 503
    ws_code = WS_TRY_AGAIN
    default_kind = "unavailable"
    retry_after_s = 1


class RateLimited(ServiceError):
    """The client used up its request budget (TAD_RATE_LIMIT_PER_S); retry after a while."""

    status = 429
    ws_code = WS_TRY_AGAIN
    default_kind = "rate_limited"

    def __init__(self, message: str, retry_after_s: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


_POINT_KINDS: tuple[tuple[type[PointError], str], ...] = (
    (OutOfOrderError, "out_of_order"),
    (NonFiniteValueError, "non_finite"),
    (ChannelCountError, "channels"),
)


def from_point_error(exc: PointError, points: int = 0) -> InvalidPoint:
    """Translate the core's precise error at the edge, keeping stream, field and reason."""
    kind = next((k for cls, k in _POINT_KINDS if isinstance(exc, cls)), "invalid")
    if exc.value is None:
        message = f"{exc.field}: {exc.reason}"
    else:
        value = exc.value if isinstance(exc.value, int | float | str) else str(exc.value)
        message = f"{exc.field}={value!r}: {exc.reason}"
    return InvalidPoint(
        message,
        field=exc.field,
        stream_id=exc.stream_id,
        kind=kind,
        points=points,
    )
