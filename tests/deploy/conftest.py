"""Fixtures for the deployment tests: the service tests' bundle and redis-server fixtures."""

from tests.service.conftest import bundle_v1, pytest_configure, redis_prefix, redis_url

__all__ = ["bundle_v1", "pytest_configure", "redis_prefix", "redis_url"]

# no_torch/sitecustomize.py is for the service processes' PYTHONPATH; importing it (as
# --doctest-modules would) blocks torch in the test process itself
collect_ignore = ["no_torch"]
