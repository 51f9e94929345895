"""Fixtures for the reliability tests: the service tests' bundle, model directory, redis-server
and clients (tests/service/conftest.py), reused as they are."""

from tests.service.conftest import (
    bundle_v1,
    make_client,
    model_dir,
    pytest_configure,
    redis_prefix,
    redis_url,
)

__all__ = [
    "bundle_v1",
    "make_client",
    "model_dir",
    "pytest_configure",
    "redis_prefix",
    "redis_url",
]
