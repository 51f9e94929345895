"""Fixtures for the service tests: a real bundle, a real redis-server, app clients.

The bundle is trained once per session (a tiny CCM-TAD on the demo data, ~2 s); further
versions are made by rewriting its manifest, which is all a new version is to the service.
Redis is a private `redis-server` on a free port; without the binary the Redis tests are
skipped locally and fail in CI (env CI set), never silently pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.helpers import free_port, train_bundle, wait_for


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", "ignore:.*httpx2.*")
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:torch.*")
    config.addinivalue_line("filterwarnings", "ignore:.*legacy TorchScript-based ONNX export.*")


@pytest.fixture(scope="session")
def bundle_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_bundle(tmp_path_factory.mktemp("bundles") / "demo-v1")


@pytest.fixture
def model_dir(tmp_path: Path, bundle_v1: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    shutil.copytree(bundle_v1, d / "demo-v1")
    return d


@pytest.fixture
def make_client(model_dir: Path) -> Iterator[Callable[..., Any]]:
    """`make_client(**settings)` → an entered TestClient on a fresh app."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import load_settings

    opened: list[Any] = []

    def make(**overrides: Any) -> Any:
        overrides.setdefault("model_dir", model_dir)
        client = TestClient(create_app(load_settings(**overrides)))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for c in reversed(opened):
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., Any]) -> Any:
    return make_client()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required in CI (apt-get install redis-server)")
        pytest.skip("redis-server not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        r = redis.Redis.from_url(url)
        wait_for(lambda: _pings(r), timeout=10, what="redis-server")
        r.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _pings(r: Any) -> bool:
    try:
        return bool(r.ping())
    except Exception:
        return False


@pytest.fixture
def redis_prefix() -> str:
    """A fresh key prefix per test: tests share one redis-server but never each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def wait() -> Callable[..., Any]:
    return wait_for


@pytest.fixture
def redis_env(model_dir: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    """Environment of a service process on the shared redis-server with its own prefix."""
    return {
        "TAD_MODEL_DIR": str(model_dir),
        "TAD_REDIS_URL": redis_url,
        "TAD_REDIS_PREFIX": redis_prefix,
    }
