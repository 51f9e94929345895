"""Refusals written straight to ASGI `send`, for middleware that answers before any route runs.

The body is the same `ServiceError` JSON the routes' exception handlers produce, so a client
cannot tell which layer refused it.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from starlette.types import Send

from service.errors import ServiceError


async def refuse(send: Send, err: ServiceError, extra: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """An HTTP error response that closes the connection (the body may be unread)."""
    body = orjson.dumps(err.body())
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def refuse_socket(send: Send, err: ServiceError) -> None:
    """Accept, say why in an error frame, close with the error's code and a reason (the same
    refusal the WebSocket routes give)."""
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": orjson.dumps(err.body()).decode()})
    await send({"type": "websocket.close", "code": err.ws_code, "reason": err.close_reason()})
