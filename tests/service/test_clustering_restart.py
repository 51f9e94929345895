"""Clustering jobs on a real redis-server with real uvicorn processes: results survive restarts,
a job running at shutdown is handed back, and one whose process is killed with SIGKILL is
re-queued (or failed, past TAD_CLUSTERING_MAX_RECOVERIES) — never left running forever."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.clustering_helpers import (
    SMALL,
    emtc_job,
    job_processes,
    three_groups,
    wait_for,
    wait_job,
    wait_running,
)
from tests.support.processes import ServerProcess


@pytest.fixture
def env(redis_env: dict[str, str]) -> dict[str, str]:
    # heartbeat every 0.5 s; a dead worker is noticed fast
    return {**redis_env, "TAD_CLUSTERING_LEASE_S": "2.5"}


def medium_job(epochs: int) -> dict[str, Any]:
    """A few seconds of training: long enough to be caught running."""
    return emtc_job((120, 64, 3), 3, 2, epochs=epochs, hidden=32, depth=2, seed=3)


def get(server: ServerProcess) -> Any:
    return lambda loc: httpx.get(server.http + loc, timeout=10)


def test_results_survive_restarts_and_a_killed_job_is_requeued(
    env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    server = ServerProcess(env, log=log).start()
    try:
        x, y = three_groups()
        body = {
            "series": x.tolist(),
            "labels": y.tolist(),
            "n_clusters": 3,
            "method": "emtc",
            "options": SMALL,
        }
        small = httpx.post(f"{server.http}/v1/clustering/jobs", json=body, timeout=10)
        assert small.status_code == 202
        small_loc = small.headers["location"]
        finished = wait_job(get(server), small_loc)
        assert finished["status"] == "succeeded"

        r = httpx.post(f"{server.http}/v1/clustering/jobs", json=medium_job(25), timeout=30)
        long_loc = r.headers["location"]
        wait_running(get(server), long_loc)

        # graceful stop (SIGTERM): the running job is handed back, not failed
        server.signal(signal.SIGTERM)
        assert server.proc is not None and server.proc.wait(timeout=20) in (0, -signal.SIGTERM)
        server = ServerProcess(env, log=log).start()
        assert get(server)(small_loc).json() == finished  # kept as it was
        job = wait_running(get(server), long_loc)
        assert job["attempts"] == 2 and job["recoveries"] == 0

        # kill -9 while it trains: the job's process ends with it (its pipe closes), the
        # lease expires and the next process re-queues the job
        assert server.proc is not None
        (job_pid,) = job_processes(server.proc.pid)
        server.kill9()
        wait_for(lambda: not Path(f"/proc/{job_pid}").exists(), 10)
        server = ServerProcess(env, log=log).start()
        done = wait_job(get(server), long_loc, timeout=90)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 3 and done["recoveries"] == 1
        assert done["progress"]["epoch"] == 25 and len(done["result"]["labels"]) == 120
        assert get(server)(small_loc).json() == finished
    finally:
        server.stop()


def test_a_killed_job_past_max_recoveries_is_failed_not_lost(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "TAD_CLUSTERING_MAX_RECOVERIES": "0"}
    log = tmp_path / "server.log"
    server = ServerProcess(env, log=log).start()
    try:
        r = httpx.post(f"{server.http}/v1/clustering/jobs", json=medium_job(200), timeout=30)
        loc = r.headers["location"]
        wait_running(get(server), loc)
        server.kill9()
        server = ServerProcess(env, log=log).start()
        done = wait_job(get(server), loc, timeout=120)
        assert done["status"] == "failed" and done["recoveries"] == 1
        assert "interrupted" in done["error"] and "kill" in done["error"]
    finally:
        server.stop()
