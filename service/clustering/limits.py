"""Body limits per path: TAD_CLUSTERING_MAX_BYTES for /v1/clustering/, TAD_MAX_BODY_BYTES
for everything else (a clustering upload is legitimately larger than a batch of points)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import TooLarge
from service.limits import BodyLimit

CLUSTERING_PREFIX = "/v1/clustering/"


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
        target = self.clustering if path.startswith(CLUSTERING_PREFIX) else self.default
        await target(scope, receive, send)
