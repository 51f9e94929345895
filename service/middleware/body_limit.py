"""Request-size limit as a pure ASGI middleware, enforced before any parsing.

A declared Content-Length over the limit is refused at once; a chunked body is counted while
it is read and refused as soon as it passes the limit, so an oversized upload never sits in
memory. WebSocket messages are limited separately (uvicorn's ws_max_size and the route).
The limit depends on the path: TAD_CLUSTERING_MAX_BYTES for /v1/clustering/,
TAD_MAX_BODY_BYTES for everything else (a clustering upload is legitimately larger than a batch
of points); `PathBodyLimit` is the middleware the app installs.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import BadRequest, TooLarge
from service.middleware.refusal import refuse

CLUSTERING_PREFIX = "/v1/clustering/"
TRAINING_UPLOAD_PATH = "/v1/training/uploads"  # a table to train on: as large


class BodyLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int, on_reject: Callable[[str], None] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject  # called with the path of every refused request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await refuse(
                    send,
                    BadRequest(
                        "Content-Length is not a number", field="Content-Length", kind="malformed"
                    ),
                )
                return
            if size > self.max_bytes:
                await refuse(send, self._too_large(scope))
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message, receive), send)
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await refuse(send, self._too_large(scope))
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)

    def _too_large(self, scope: Scope) -> TooLarge:
        if self.on_reject is not None:
            self.on_reject(scope["path"])
        return TooLarge(
            f"request body larger than {self.max_bytes} bytes (TAD_MAX_BODY_BYTES)", field="body"
        )


def _replay(chunks: list[bytes], pending: Message | None, receive: Receive) -> Receive:
    """A receive() that first hands over the buffered body, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if pending is not None:
                return pending
            body = b"".join(chunks)
            chunks.clear()  # one copy of a 30 MB upload held, not two
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _ClusteringBodyLimit(BodyLimit):
    def _too_large(self, scope: Scope) -> TooLarge:
        return TooLarge(
            f"request body larger than {self.max_bytes} bytes (TAD_CLUSTERING_MAX_BYTES)",
            field="body",
        )


class PathBodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        clustering_max_bytes: int,
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self.default = BodyLimit(app, max_bytes, on_reject)
        self.clustering = _ClusteringBodyLimit(app, clustering_max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        large = path.startswith(CLUSTERING_PREFIX) or path == TRAINING_UPLOAD_PATH
        target = self.clustering if large else self.default
        await target(scope, receive, send)
