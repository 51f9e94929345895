"""`tad worker`: a job worker without the HTTP service (the trainer image runs it).

It claims clustering and training jobs from the shared Redis queue and runs each in its own
process (service.clustering.runner: memory cap, lease, recovery, cancel), writing trained
bundles into the shared model directory; services on the same Redis and model directory
queue the jobs (`TAD_CLUSTERING_WORKERS=0` leaves every job to workers) and load new bundles
by rescanning (`TAD_MODEL_RESCAN_S`). So the slim service image, which has no torch, can
offer training and EMTC through a worker that has.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Annotated

import typer


def worker(
    check: Annotated[
        bool, typer.Option("--check", help="only check that the job queue is reachable (health)")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(help="jobs at once [TAD_CLUSTERING_WORKERS, at least 1 here]")
    ] = None,
) -> None:
    """Run clustering and training jobs from the shared Redis queue (TAD_REDIS_URL)."""
    from service.clustering.jobs import ClusteringJobs
    from service.settings import SettingsError, load_settings

    logging.basicConfig(
        level=os.environ.get("TAD_LOG_LEVEL", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not settings.redis_url:
        typer.echo("error: TAD_REDIS_URL: a worker takes its jobs from Redis; set it", err=True)
        raise typer.Exit(2)
    n = workers if workers is not None else max(1, settings.clustering_workers)
    jobs = ClusteringJobs.from_settings(settings.model_copy(update={"clustering_workers": n}))
    if check:
        ok = jobs.store.ping()
        jobs.store.close()
        raise typer.Exit(0 if ok else 1)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    jobs.start()
    logging.getLogger(__name__).info(
        "worker: %d job(s) at once from %s (model dir %s)", n, "redis", settings.model_dir
    )
    try:
        stop.wait()
    finally:
        jobs.stop()
