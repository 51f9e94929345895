"""The one private redis-server of the tests and benchmarks (never a mock).

`RedisServer(workdir)` is persisted like docker-compose.yml's (append-only file, fsync every
second), so it can be killed and come back with its data; `persistent=False` keeps nothing on
disk (the shared session server, the benchmarks). `stop` is SIGTERM: Redis writes what it has
and exits (a graceful restart). Without the binary the constructor raises `RedisServerMissing`;
`require_redis_server()` turns that into a failure in CI and a skip elsewhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tests.support.processes import ManagedProcess, free_port, wait_for


class RedisServerMissing(FileNotFoundError):
    """No `redis-server` on the PATH."""


def require_redis_server() -> None:
    """In a test: fail in CI (a missing component is a failure there), skip elsewhere."""
    import pytest

    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required in CI (apt-get install redis-server)")
        pytest.skip("redis-server not installed")


class RedisServer(ManagedProcess):
    stop_timeout_s = 15.0

    def __init__(
        self, workdir: Path, *extra: str, persistent: bool = True, port: int | None = None
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerMissing("redis-server is not installed (apt-get install redis-server)")
        self.port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        disk = ["--appendonly", "yes", "--appendfsync", "everysec"] if persistent else []
        argv = [
            binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(workdir)),
            *(disk or ["--appendonly", "no"]),
            *("--save", "", "--enable-debug-command", "local"),
            *extra,
        ]
        super().__init__("redis", argv)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        super().start()
        wait_for(self.pings, 15, f"redis-server on {self.port}")
        return self

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, socket_timeout=10)

    def pings(self) -> bool:
        try:
            r = self.client()
            try:
                return bool(r.ping())
            finally:
                r.close()
        except Exception:
            return False
