"""The job runner: threads that claim queued jobs and run each in its own process.

Each runner thread only supervises: it claims a job, starts a child process for it
(`process.run_isolated`: memory capped by TAD_CLUSTERING_MAX_MEMORY_MB, lower CPU priority),
relays its progress and renews its lease (a heartbeat thread that also picks up cancellation).
Cancel, timeout and shutdown kill the child, so they take effect within a poll (~0.1 s), not
at the trainer's next batch. A child that dies (OOM kill, crash) is re-queued once and failed
with the reason the second time (TAD_CLUSTERING_MAX_RECOVERIES); the ingest process never
holds a job's memory. On shutdown a running job is put back at the head of the queue (with
Redis it resumes from scratch after the restart); after a crash of the whole service its lease
expires and `recover` does the same, under the same count.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from service.clustering import work
from service.clustering.jobstore import JobStore
from service.clustering.process import JobFailed, WorkerDied, run_isolated
from service.settings import Settings
from service.state.store import StoreUnavailable

log = logging.getLogger(__name__)


class _Control:
    """Heartbeat of one running job, and the `should_stop` its trainer polls."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        token: str,
        lease_s: float,
        timeout_s: float,
        stopping: threading.Event,
    ) -> None:
        self.store, self.job_id, self.token, self.lease_s = store, job_id, token, lease_s
        self.deadline = time.monotonic() + timeout_s
        self.stopping = stopping
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="tad-cluster-beat", daemon=True)

    def __enter__(self) -> _Control:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        interval = min(self.lease_s / 3, 0.5)
        while not self._done.wait(interval):
            try:
                beat = self.store.heartbeat(self.job_id, self.token, self.lease_s)
            except StoreUnavailable as exc:
                log.warning("job %s: heartbeat failed (%s)", self.job_id, exc)
                continue
            if beat == "cancel":
                self.cancelled.set()
            elif beat == "lost":
                log.warning("job %s: lease lost; another worker owns it now", self.job_id)
                self.lost.set()
                return

    def timed_out(self) -> bool:
        return time.monotonic() > self.deadline

    def should_stop(self) -> bool:
        return (
            self.cancelled.is_set()
            or self.lost.is_set()
            or self.stopping.is_set()
            or self.timed_out()
        )

    def progress(self, rec: dict[str, Any]) -> None:
        body = {"epoch": int(rec["epoch"]), "epochs": int(rec["epochs"]), "loss": rec.get("loss")}
        if "fault_auc" in rec:  # a training job's stopping figure (service.training.work)
            body["fault_auc"] = rec["fault_auc"]
        try:
            self.store.progress(self.job_id, self.token, orjson.dumps(body).decode())
        except StoreUnavailable as exc:
            log.warning("job %s: progress not recorded (%s)", self.job_id, exc)


class JobRunner:
    def __init__(self, store: JobStore, settings: Settings, poll_s: float = 0.5) -> None:
        self.store = store
        self.workers = settings.clustering_workers
        self.threads = settings.clustering_torch_threads
        self.lease_s = settings.clustering_lease_s
        self.timeout_s = settings.clustering_job_timeout_s
        self.max_recoveries = settings.clustering_max_recoveries
        self.memory_limit_bytes = settings.clustering_max_memory_mb << 20
        self.poll_s = poll_s
        self.broken: str | None = None  # why training cannot run here (torch failed to import)
        # called in the runner's thread after a job succeeded: (its meta, its result)
        self.on_success: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
        self._id = uuid.uuid4().hex[:12]
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(
                target=self._loop, args=(f"{self._id}-{i}",), name=f"tad-cluster-{i}", daemon=True
            )
            t.start()
            self._threads.append(t)

    def wake(self) -> None:
        """A job was queued in this process: claim it now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    def _loop(self, worker: str) -> None:
        next_recover = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_recover:  # at start-up, then every lease/2
                next_recover = time.monotonic() + self.lease_s / 2
                self._recover()
            try:
                claimed = self.store.claim(worker, self.lease_s)
            except StoreUnavailable as exc:
                log.warning("clustering queue unavailable (%s)", exc)
                self._stop.wait(1.0)
                continue
            if claimed is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self._run(*claimed)

    def _recover(self) -> None:
        try:
            ids = self.store.recover(self.max_recoveries)
        except StoreUnavailable as exc:
            log.warning("clustering recovery skipped (%s)", exc)
            return
        for job_id in ids:
            log.warning("job %s: its worker was lost; re-queued or failed", job_id)

    def _run(self, job_id: str, token: str) -> None:
        log.info("job %s: started (%s)", job_id, token)
        with _Control(self.store, job_id, token, self.lease_s, self.timeout_s, self._stop) as ctl:
            try:
                rec, data = self.store.get(job_id), self.store.data(job_id)
                if rec is None or data is None:
                    raise RuntimeError("the job's input is gone from the store")
                result = run_isolated(
                    data,
                    rec.meta,
                    self.threads,
                    self.memory_limit_bytes,
                    ctl.progress,
                    ctl.should_stop,
                )
            except work.Stopped:
                self._stopped(job_id, token, ctl)
                return
            except StoreUnavailable as exc:  # the lease will expire and recovery re-queues it
                log.warning("job %s: store unavailable (%s); left to recovery", job_id, exc)
                return
            except ImportError as exc:
                self.broken = f"clustering cannot run here: {type(exc).__name__}: {exc}"
                log.error("job %s: %s", job_id, self.broken)
                self._finish(job_id, token, "failed", error=self.broken)
                return
            except WorkerDied as exc:
                log.error("job %s: its process died: %s", job_id, exc)
                self._died(job_id, token, str(exc))
                return
            except JobFailed as exc:
                log.warning("job %s failed: %s", job_id, exc)
                self._finish(job_id, token, "failed", error=str(exc))
                return
            except Exception as exc:
                log.exception("job %s failed", job_id)
                self._finish(job_id, token, "failed", error=f"{type(exc).__name__}: {exc}")
                return
        self._finish(job_id, token, "succeeded", result=orjson.dumps(result).decode())
        log.info("job %s: succeeded in %.1f s", job_id, result["seconds"])
        if self.on_success is not None:
            try:
                self.on_success(rec.meta, result)
            except Exception:
                log.exception("job %s: after-success hook failed", job_id)

    def _stopped(self, job_id: str, token: str, ctl: _Control) -> None:
        if ctl.lost.is_set():
            return
        if ctl.cancelled.is_set():
            self._finish(job_id, token, "cancelled", error="cancelled by request")
        elif ctl.timed_out():
            msg = f"ran longer than TAD_CLUSTERING_JOB_TIMEOUT_S = {self.timeout_s:g} s"
            self._finish(job_id, token, "failed", error=msg)
        else:  # the service is stopping: hand the job back
            try:
                self.store.requeue(job_id, token)
                log.info("job %s: re-queued at shutdown", job_id)
            except StoreUnavailable as exc:
                log.warning("job %s: not re-queued (%s); left to recovery", job_id, exc)

    def _died(self, job_id: str, token: str, reason: str) -> None:
        """Re-queue a job whose process died, or fail it once that has happened too often."""
        try:
            outcome = self.store.died(job_id, token, self.max_recoveries, reason)
        except StoreUnavailable as exc:
            log.warning("job %s: death not recorded (%s); left to recovery", job_id, exc)
            return
        log.warning("job %s: %s", job_id, "re-queued" if outcome == "queued" else outcome)

    def _finish(
        self, job_id: str, token: str, status: str, result: str = "", error: str = ""
    ) -> None:
        for attempt in range(3):
            try:
                if not self.store.finish(job_id, token, status, result, error):
                    log.warning("job %s: outcome not recorded, lease was lost", job_id)
                return
            except StoreUnavailable as exc:
                log.warning("job %s: finish failed (%s), attempt %d", job_id, exc, attempt + 1)
                time.sleep(1.0)
