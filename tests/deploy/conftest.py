"""Fixtures for the deployment tests: the service tests' bundle and redis-server fixtures."""

from tests.service.conftest import bundle_v1, redis_prefix, redis_url

__all__ = ["bundle_v1", "redis_prefix", "redis_url"]
