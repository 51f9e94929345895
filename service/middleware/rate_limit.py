"""Per-client rate limit as a pure ASGI middleware.

`RateLimit` gives every client a token bucket (TAD_RATE_LIMIT_PER_S, TAD_RATE_LIMIT_BURST): a
client is its API key when it presents a valid one, else its address. An HTTP request over the
budget is refused before its body is read (429 with Retry-After); a WebSocket over the budget
at its handshake gets an error frame and close 1013 with the wait in the reason, and its later
messages are delayed until their tokens are there (backpressure, never a dropped message).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.auth import key_matches, presented_key
from service.errors import RateLimited
from service.middleware.refusal import refuse, refuse_socket


class TokenBuckets:
    """One token bucket per client: `rate` tokens a second, at most `burst` saved up.

    Memory is bounded: at most `max_clients` buckets are kept, the least recently used dropped
    first (a dropped bucket comes back full, which only favours a client that was idle)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate, self.burst, self.max_clients, self.clock = rate, float(burst), max_clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, client: str) -> float:
        now = self.clock()
        tokens, then = self._buckets.pop(client, (self.burst, now))
        return min(self.burst, tokens + (now - then) * self.rate)

    def _store(self, client: str, tokens: float) -> None:
        self._buckets[client] = (tokens, self.clock())
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)

    def take(self, client: str, cost: float = 1.0) -> float:
        """Take `cost` tokens and return 0.0, or take nothing and return the seconds until
        they would be there."""
        tokens = self._level(client)
        wait = 0.0 if tokens >= cost else (cost - tokens) / self.rate
        self._store(client, tokens - cost if wait == 0.0 else tokens)
        return wait

    def reserve(self, client: str, cost: float = 1.0) -> float:
        """Take `cost` tokens now, going into debt if need be; return the seconds the caller
        must wait before using them (callers queue up in the order they reserved)."""
        tokens = self._level(client) - cost
        self._store(client, tokens)
        return 0.0 if tokens >= 0 else -tokens / self.rate


class RateLimit:
    """Pure ASGI middleware applying `TokenBuckets` per client (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        buckets: TokenBuckets,
        api_keys: Sequence[bytes] = (),
        exempt: Sequence[str] = ("/healthz", "/readyz"),
        on_limit: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.buckets = buckets
        self.api_keys = list(api_keys)
        self.exempt = frozenset(exempt)
        self.on_limit = on_limit  # called with "http", "websocket" (refused) or "delayed"

    def client(self, scope: Scope) -> str:
        """The bucket's name: a digest of a valid API key, else the peer address (so a wrong
        key cannot buy a fresh bucket). Never the key itself."""
        websocket = scope["type"] == "websocket"
        key = presented_key(HTTPConnection(scope), allow_query=websocket)
        if key is not None and self.api_keys and key_matches(self.api_keys, key):
            return "key:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:16]
        peer = scope.get("client")
        return "addr:" + (str(peer[0]) if peer else "unknown")

    def _limited(self, action: str, wait: float) -> RateLimited:
        if self.on_limit is not None:
            self.on_limit(action)
        seconds = max(1, math.ceil(wait))
        return RateLimited(
            f"retry after {seconds} s: over the rate limit of {self.buckets.rate:g} requests/s "
            f"(burst {self.buckets.burst:g}; TAD_RATE_LIMIT_PER_S)",
            retry_after_s=seconds,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        client = self.client(scope)
        if kind == "http":
            wait = self.buckets.take(client)
            if wait > 0:
                err = self._limited("http", wait)
                await refuse(send, err, [(b"retry-after", str(err.retry_after_s).encode())])
                return
            await self.app(scope, receive, send)
            return
        first = await receive()
        if first["type"] == "websocket.connect":
            wait = self.buckets.take(client)
            if wait > 0:
                await refuse_socket(send, self._limited("websocket", wait))
                return
        await self.app(scope, self._throttled(client, first, receive), send)

    def _throttled(self, client: str, first: Message, receive: Receive) -> Receive:
        """receive() for a WebSocket: the handshake first, then each message once its token
        is there."""
        pending: list[Message] = [first]

        async def throttled() -> Message:
            if pending:
                return pending.pop()
            message = await receive()
            if message["type"] == "websocket.receive":
                wait = self.buckets.reserve(client)
                if wait > 0:
                    if self.on_limit is not None:
                        self.on_limit("delayed")
                    await asyncio.sleep(wait)
            return message

        return throttled
