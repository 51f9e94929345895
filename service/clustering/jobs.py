"""The clustering-jobs facade the routes use: submit, look up, cancel; start and stop the runner.

Jobs live in Redis when TAD_REDIS_URL is set (shared by replicas, kept across restarts), else
in process memory. Methods block (store round trips, encoding): routes call them in a thread.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson

from service.clustering import backend
from service.clustering.inputs import JobInput, UploadLimits
from service.clustering.jobstore import JobRecord, JobStore, MemoryJobStore
from service.clustering.parse_process import PARSERS
from service.clustering.runner import JobRunner
from service.clustering.work import encode_input
from service.errors import NotFound, Unavailable
from service.settings import Settings


class QueueFull(Unavailable):
    status = 429
    default_kind = "queue_full"
    retry_after_s = 10


class ClusteringUnavailable(Unavailable):
    default_kind = "clustering_unavailable"
    retry_after_s = 3600


def make_job_store(settings: Settings) -> JobStore:
    if settings.redis_url:
        from service.clustering.redis_jobs import RedisJobStore

        return RedisJobStore(
            settings.redis_url,
            settings.redis_prefix,
            settings.clustering_keep_s,
            settings.store_timeout_s,
        )
    return MemoryJobStore(settings.clustering_keep_s, settings.clustering_keep_jobs)


class ClusteringJobs:
    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.settings = settings
        self.store = store
        self.limits = UploadLimits.from_settings(settings)
        self.parsers = asyncio.Semaphore(PARSERS)  # parse processes at once (parse_process)
        self.runner = JobRunner(store, settings)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClusteringJobs:
        return cls(settings, make_job_store(settings))

    def start(self) -> None:
        """Start the worker threads. Without torch they still run MiniRocket jobs; EMTC jobs
        are then refused at submission (503)."""
        self.runner.start()

    def stop(self) -> None:
        self.runner.stop()
        self.store.close()

    def check_available(self, method: str) -> None:
        """Refuse (503) a method this installation cannot run: EMTC needs torch."""
        if method != "emtc":
            return
        if self.settings.clustering_workers == 0 and self.settings.redis_url:
            return  # this service only queues: a `tad worker` with torch runs the jobs
        reason = backend.torch_missing() or self.runner.broken
        if reason:
            raise ClusteringUnavailable(reason)

    def submit(self, job: JobInput, tenant: str | None = None) -> JobRecord:
        """Queue the job; `tenant`: the submitting key's, the only tenant that sees it."""
        job_id = uuid.uuid4().hex
        meta = {
            "tenant": tenant,
            "input": job.summary(),
            "options": job.options.model_dump(exclude_none=True),
            "trainer": job.options.trainer_options(),
            "n_clusters": job.n_clusters,
            "method": job.method,
            "n_features": job.options.n_features,
            "episodes": job.episodes,
        }
        return self.enqueue(job_id, meta, encode_input(job.x, job.labels))

    def enqueue(self, job_id: str, meta: dict[str, Any], data: bytes) -> JobRecord:
        """Queue a job of any kind (`meta["task"]`: clustering by default, or training:
        service.training) with its input bytes; 429 when the queue is full."""
        fields = {
            "status": "queued",
            "created_at": repr(time.time()),
            "attempts": "0",
            "recoveries": "0",
            "meta": orjson.dumps(meta).decode(),
        }
        if not self.store.enqueue(job_id, fields, data, self.settings.clustering_max_queue):
            raise QueueFull(
                f"{self.settings.clustering_max_queue} jobs are already queued "
                "(TAD_CLUSTERING_MAX_QUEUE); retry later",
                field="queue",
            )
        self.runner.wake()
        return JobRecord(job_id, fields)

    def get(self, job_id: str, tenant: str | None = None) -> JobRecord:
        """The job, if it is a clustering job the caller may see (a tenant key: its tenant's
        jobs only; another tenant's is unknown, not forbidden: its existence stays private)."""
        rec = self.store.get(job_id)
        if rec is None or rec.meta.get("task") == "training":  # service.training's own kind
            raise _unknown(job_id)
        if tenant is not None and rec.meta.get("tenant") != tenant:
            raise _unknown(job_id)
        return rec

    def cancel(self, job_id: str, tenant: str | None = None) -> JobRecord:
        self.get(job_id, tenant)
        rec = self.store.cancel(job_id)
        if rec is None:
            raise _unknown(job_id)
        return rec


def _unknown(job_id: str) -> NotFound:
    return NotFound(f"no clustering job {job_id!r}", field="job_id", kind="unknown_job")
