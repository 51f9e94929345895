"""Clustering jobs cannot take ingest down: each runs in its own process with a memory cap, a
job over the cap is refused before it starts, cancel ends the process, and a job whose process
keeps dying is failed with the reason instead of being retried forever."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.clustering.process import JobFailed, run_isolated
from service.clustering.work import encode_input
from tests.service.clustering_helpers import (
    job_processes,
    long_job_body,
    npz_bytes,
    wait_for,
    wait_job,
    wait_running,
)


def test_the_issues_job_is_refused_before_it_starts(client: Any) -> None:
    """N = 2000, T = 2000, D = 1 with options inside the schema: it took 11 GB in a minute."""
    x = np.zeros((2000, 2000, 1), dtype=np.float32)
    opts = '{"epochs": 200, "hidden": 256, "depth": 6, "n_views": 4, "batch_size": 4096}'
    r = client.post(
        "/v1/clustering/jobs",
        files={"file": ("big.npz", npz_bytes(X=x))},
        data={"n_clusters": "3", "method": "emtc", "options": opts},
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "too_much_memory" and err["field"] == "options"
    assert "TAD_CLUSTERING_MAX_MEMORY_MB = 4096 MB" in err["message"]
    assert "batch_size=4096" in err["message"] and "N=2000" in err["message"]


def test_a_bigger_cap_admits_what_the_default_refuses(make_client: Any) -> None:
    body = long_job_body(epochs=1)
    body["options"] |= {"hidden": 256, "depth": 6, "n_views": 4, "batch_size": 160}
    assert make_client().post("/v1/clustering/jobs", json=body).status_code == 422
    big = make_client(clustering_max_memory_mb=20_000, clustering_workers=0)
    assert big.post("/v1/clustering/jobs", json=body).status_code == 202


def test_a_job_runs_in_its_own_process_and_cancel_kills_it_within_a_second(client: Any) -> None:
    r = client.post("/v1/clustering/jobs", json=long_job_body())
    loc = r.headers["location"]
    wait_running(client.get, loc)
    (pid,) = job_processes(os.getpid())
    assert pid != os.getpid()
    assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "1000"  # killed first
    t0 = time.monotonic()
    assert client.delete(loc).json()["cancel_requested"] is True
    gone = wait_for(lambda: not Path(f"/proc/{pid}").exists() or not job_processes(os.getpid()), 5)
    assert gone < 1.0, f"the job's process ended {gone:.2f} s after the cancel"
    done = wait_job(client.get, loc, timeout=5)
    assert done["status"] == "cancelled" and done["error"] == "cancelled by request"
    assert time.monotonic() - t0 < 2.0


def test_a_job_whose_process_dies_twice_is_failed_with_the_reason(client: Any) -> None:
    r = client.post("/v1/clustering/jobs", json=long_job_body())
    loc = r.headers["location"]
    wait_running(client.get, loc)
    (first,) = job_processes(os.getpid())
    os.kill(first, signal.SIGKILL)  # as the OOM killer would
    wait_for(lambda: client.get(loc).json()["recoveries"] == 1, 5)
    again = wait_running(client.get, loc)  # re-queued and started afresh
    assert again["attempts"] == 2
    (second,) = job_processes(os.getpid())
    assert second != first
    os.kill(second, signal.SIGKILL)
    done = wait_job(client.get, loc, timeout=10)
    assert done["status"] == "failed" and done["recoveries"] == 2
    assert "died 2 time(s)" in done["error"] and "SIGKILL" in done["error"]
    assert "not retried" in done["error"]
    assert client.get("/healthz").status_code == 200  # ingest never noticed


def test_the_os_limit_ends_a_job_that_outgrows_it() -> None:
    """The cap holds even where the estimate would be wrong: the kernel refuses the memory."""
    x = np.random.default_rng(0).normal(size=(64, 1024, 1)).astype(np.float32)  # ~2.5 GB peak
    with pytest.raises(JobFailed, match="out of memory.*TAD_CLUSTERING_MAX_MEMORY_MB = 1200 MB"):
        run_isolated(
            encode_input(x, None),
            {"n_clusters": 2, "trainer": {"epochs": 1}},
            threads=1,
            memory_limit_bytes=1200 << 20,
            progress=lambda _: None,
            should_stop=lambda: False,
        )
