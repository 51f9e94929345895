"""`tad worker` (issue 26, part 3): a service that only queues jobs (TAD_CLUSTERING_WORKERS=0)
and a worker process on the same Redis and model directory that trains them; the service
loads the new bundle by rescanning (TAD_MODEL_RESCAN_S), with no reload request."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.data import points, series
from tests.support.processes import ROOT, ManagedProcess, ServerProcess, wait_for

SMALL = {"epochs": 2, "d_model": 16, "expansion": 1, "seed": 0}


def job_status(server: ServerProcess, job_id: str) -> str:
    return str(httpx.get(f"{server.http}/v1/training/jobs/{job_id}").json()["status"])


def test_a_worker_trains_what_a_queue_only_service_accepts(
    redis_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **redis_env,
        "TAD_CLUSTERING_WORKERS": "0",
        "TAD_MODEL_RESCAN_S": "0.5",
        "TAD_HISTORY_POINTS": "2000",
    }
    server = ServerProcess(env, log=tmp_path / "server.log").start()
    worker = ManagedProcess(
        "worker",
        [sys.executable, "-m", "tad.cli", "worker"],
        tmp_path / "worker.log",
        {**os.environ, **env},
        ROOT,
    )
    try:
        x = series(800, anomaly=None)
        r = httpx.post(f"{server.http}/v1/streams/p/points", json={"points": points(x)})
        assert r.status_code == 200, r.text
        body = {"model": "plant", "streams": ["p"], "options": SMALL}
        r = httpx.post(f"{server.http}/v1/training/jobs", json=body)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        assert job_status(server, job_id) == "queued"  # this service runs no job itself
        worker.start()
        wait_for(
            lambda: job_status(server, job_id) not in ("queued", "running"),
            180,
            "the worker to finish the job",
        )
        assert job_status(server, job_id) == "succeeded", worker.log()[-3000:]

        def served() -> bool:
            models = httpx.get(f"{server.http}/v1/models").json()["models"]
            return "plant" in {m["name"] for m in models}

        wait_for(served, 60, "the service to load the new bundle by rescanning")
        r = httpx.put(f"{server.http}/v1/streams/p", json={"model": "plant"})
        assert r.status_code == 200, r.text
        worker.signal(signal.SIGTERM)
        assert worker.proc is not None and worker.proc.wait(timeout=60) == 0
    finally:
        worker.stop()
        server.stop()


def run_tad(args: list[str], env: dict[str, str]) -> Any:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TAD_")}
    return subprocess.run(
        [sys.executable, "-m", "tad.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_worker_check_and_a_worker_without_redis(redis_env: dict[str, str]) -> None:
    assert run_tad(["worker", "--check"], redis_env).returncode == 0
    down = {**redis_env, "TAD_REDIS_URL": "redis://127.0.0.1:1/0", "TAD_STORE_TIMEOUT_S": "0.5"}
    assert run_tad(["worker", "--check"], down).returncode == 1
    out = run_tad(["worker"], {"TAD_MODEL_DIR": redis_env["TAD_MODEL_DIR"]})
    assert out.returncode == 2 and "TAD_REDIS_URL" in out.stderr, out.stderr
