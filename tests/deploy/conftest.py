"""The deployment tests use the shared fixtures (tests/conftest.py) as they are."""

# no_torch/sitecustomize.py is for the service processes' PYTHONPATH; importing it (as
# --doctest-modules would) blocks torch in the test process itself
collect_ignore = ["no_torch"]
