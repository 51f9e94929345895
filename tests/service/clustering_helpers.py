"""Helpers for the clustering tests: synthetic data with known groups, small options, polling."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.processes import scaled

FINAL = ("succeeded", "failed", "cancelled")
SMALL = {"epochs": 5, "hidden": 16, "depth": 2, "seed": 0}  # a fit takes well under a second


def three_groups(n_per: int = 10, t: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[3·n_per, t, 2] series in three well-separated groups (frequency and level), labels."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per)
    grid = np.linspace(0.0, 1.0, t)
    x = np.stack(
        [
            np.stack(
                [
                    (1 + c) * np.sin(2 * np.pi * (c + 1) * grid),
                    np.cos(2 * np.pi * (c + 1) * grid) + c,
                ],
                axis=1,
            )
            + 0.1 * rng.standard_normal((t, 2))
            for c in y
        ]
    )
    return x, y


def emtc_job(
    shape: tuple[int, int, int], n_clusters: int, data_seed: int, **options: Any
) -> dict[str, Any]:
    """An EMTC job body on random series of `shape` [N, T, D]; it trains exactly
    `options["epochs"]` (no stopping rule unless asked), so a test knows how long it runs."""
    options.setdefault("stop_patience", 0)
    x = np.random.default_rng(data_seed).standard_normal(shape).round(3)
    return {"series": x.tolist(), "n_clusters": n_clusters, "method": "emtc", "options": options}


def long_job_body(epochs: int = 200) -> dict[str, Any]:
    """A job that trains for minutes: something to cancel, kill or run beside ingest."""
    return emtc_job((160, 96, 4), 4, 1, epochs=epochs, seed=1)


def npz_bytes(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def wait_job(
    get: Callable[[str], Any], location: str, timeout: float = 120.0, until: tuple[str, ...] = FINAL
) -> dict[str, Any]:
    """Poll GET `location` until the job's status is one of `until` (`timeout` on an idle
    machine, stretched by the load)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = get(location).json()
        if job.get("status") in until:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job still {job.get('status')} after {timeout} s: {job}")
        time.sleep(0.05)


def wait_running(
    get: Callable[[str], Any], location: str, timeout: float = 120.0
) -> dict[str, Any]:
    """Poll until the job is running and has reported at least one epoch (`timeout` stretched
    by the load)."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = get(location).json()
        if job["status"] == "running" and job["progress"] is not None:
            return job
        if job["status"] in FINAL or time.monotonic() > deadline:
            raise AssertionError(f"job never ran: {job}")
        time.sleep(0.05)


JOB_MODULE = "service.clustering.process"


def job_processes(parent: int) -> list[int]:
    """Pids of the clustering job processes whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = int(next(x for x in status.splitlines() if x.startswith("PPid:")).split()[1])
        if ppid == parent and JOB_MODULE.encode() in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(predicate: Any, timeout: float) -> float:
    """Seconds until `predicate()` holds; fails the test after `timeout`."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - t0
