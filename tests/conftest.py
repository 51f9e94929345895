"""Shared fixtures of every test folder: generated data, trained bundles, app clients, the one
redis-server of the session.

The demo bundle is trained once per session (a tiny CCM-TAD on the demo data, ~2 s); further
versions are made by rewriting its manifest, which is all a new version is to the service.
Redis is a private `redis-server` on a free port (tests/support/redis_server.py); without the
binary the Redis tests are skipped locally and fail in CI (env CI set), never silently pass.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.data import train_bundle
from tests.support.mosquitto import Mosquitto, require_mosquitto
from tests.support.processes import wait_for
from tests.support.redis_server import RedisServer, require_redis_server


def synthetic_series(n: int, seed: int = 0) -> np.ndarray:
    """Nine channels: three sinusoid families (three channels each, correlated) + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    cols = []
    for k, period in enumerate((25.0, 40.0, 63.0)):
        base = np.sin(2 * np.pi * t / period + k)
        cols += [base * (1 + 0.3 * j) + 0.05 * rng.normal(size=n) for j in range(3)]
    return np.stack(cols, axis=1)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CCM-TAD bundle trained for a few epochs on synthetic nominal data."""
    pytest.importorskip("torch")
    from model_training.export import train_and_export
    from model_training.train import TrainConfig

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    cfg = TrainConfig(epochs=6, d_model=32, expansion=2, lr=3e-3, progress=False, seed=1)
    data = synthetic_series(3000)
    return train_and_export(data, [f"c{i}" for i in range(9)], out, cfg, "tiny", "1")


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
    """One private redis-server (nothing on disk) shared by the session's tests."""
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent=False).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One private mosquitto (tests/support/mosquitto.py) shared by the session's MQTT tests;
    each test uses its own topics and client ids."""
    require_mosquitto()
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    try:
        yield broker.url
    finally:
        broker.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A fresh key prefix per test: tests share one redis-server but never each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture(params=["memory", "redis"])
def store_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for each state store in turn: memory, then the shared redis-server."""
    if request.param == "memory":
        return {}
    return {
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_prefix": request.getfixturevalue("redis_prefix"),
    }


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
