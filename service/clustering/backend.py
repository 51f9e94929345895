"""Whether this process can train EMTC: torch is optional (the slim image has none).

`torch_missing()` is the one check the endpoints and the job runner consult; it only looks for
the package (cheap, cached) so start-up stays fast. The import itself happens in the worker
thread on the first job; if it fails there, the runner reports why and the endpoints say so.
"""

from __future__ import annotations

import functools
import importlib.util

NO_TORCH = (
    "clustering jobs need PyTorch, which this installation does not have "
    "(install the 'train' extra, or use the full image)"
)


@functools.cache
def _probe() -> str | None:
    try:
        found = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else NO_TORCH


def torch_missing() -> str | None:
    """Why clustering cannot run in this process, or None when torch is installed."""
    return _probe()
