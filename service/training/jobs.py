"""Training jobs on the clustering jobs' queue and runner: submit, look up, cancel.

One queue for both kinds of job (the same store, lease, recovery, memory cap and worker
count: TAD_CLUSTERING_*), told apart by `meta["task"]`; each API sees only its own kind. A job
that succeeded makes the service that ran it reload its models (`on_success`, wired in
`service.app`); other replicas on the same model volume load it at their next reload
(`POST /v1/models/reload` or SIGHUP).
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

from service.clustering import backend
from service.clustering.jobs import ClusteringJobs
from service.clustering.jobstore import JobRecord
from service.errors import NotFound, Unavailable
from service.registry import ModelRegistry
from service.training.input import TrainingTable
from service.training.schemas import PromotionCheck, TrainingJobCreate, TrainingUploadCreate

TASK = "training"
NO_TORCH = (
    "training needs PyTorch, which this image does not have: run the trainer image "
    "(`docker build --target trainer`) or install the 'train' extra"
)


class TrainingUnavailable(Unavailable):
    default_kind = "training_unavailable"
    retry_after_s = 3600


def bundle_folder(name: str, version: str) -> str:
    """A model directory entry for a model name (which may hold '/' or ':')."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{name}-{version}")


class TrainingJobs:
    def __init__(
        self, jobs: ClusteringJobs, model_dir: Path, registry: ModelRegistry | None = None
    ) -> None:
        self.jobs = jobs
        self.model_dir = model_dir
        self.registry = registry  # where the running version of a model is found

    def check_available(self) -> None:
        """503 when no process of this deployment can train: this one has no torch and runs
        jobs itself. With TAD_CLUSTERING_WORKERS=0 on Redis it only queues them, for a
        `tad worker` (the trainer image) to run."""
        settings = self.jobs.settings
        if settings.clustering_workers == 0 and settings.redis_url:
            return
        reason = backend.torch_missing() and NO_TORCH
        reason = reason or self.jobs.runner.broken
        if reason:
            raise TrainingUnavailable(reason, field="model")

    def submit(
        self,
        req: TrainingJobCreate,
        table: TrainingTable,
        tenant: str | None = None,
        job_id: str | None = None,
    ) -> JobRecord:
        """Queue the job (`job_id`: a scheduled refit's, the same on every replica)."""
        job_id = job_id or uuid.uuid4().hex
        promote = req.promote_if or (PromotionCheck.model_validate({}) if req.refit else None)
        options = req.options.model_dump(exclude_none=True)
        extra = {}
        if req.refit is not None:  # the model declares its schedule (service.training.refit)
            extra["refit"] = req.refit.model_dump() | {
                "streams": list(req.streams),
                "options": options,
                "include_alarms": req.include_alarms,
                "promote_if": promote.model_dump() if promote else None,
                "tenant": tenant,
            }
        meta = self._meta(job_id, req.model, tenant, promote) | {
            "channels": list(table.channels),
            "options": options,
            "manifest_extra": extra,
            "input": {
                **table.summary,
                "from": req.from_ts,
                "to": req.to_ts,
                "include_alarms": req.include_alarms,
            },
        }
        return self.jobs.enqueue(job_id, meta, table.npz())

    def submit_file(
        self, spec: TrainingUploadCreate, filename: str, data: bytes, tenant: str | None
    ) -> JobRecord:
        """Queue a job on an uploaded table; it is read (and refused if unreadable) in the
        job's process, never in the service's."""
        job_id = uuid.uuid4().hex
        meta = self._meta(job_id, spec.model, tenant, spec.promote_if) | {
            "source": "file",
            "suffix": Path(filename).suffix.lower(),
            "table": spec.table.model_dump(),
            "options": spec.options.model_dump(exclude_none=True),
            "manifest_extra": {},
            "input": {"file": Path(filename).name, "bytes": len(data)},
        }
        return self.jobs.enqueue(job_id, meta, data)

    def _meta(
        self, job_id: str, model: str, tenant: str | None, promote: PromotionCheck | None
    ) -> dict[str, Any]:
        """What every training job records: its model, the version and folder it will write,
        and with a promotion check, the check and the running version it is compared with."""
        version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{job_id[:6]}"
        running = self.registry.get(model) if self.registry is not None else None
        return {
            "task": TASK,
            "tenant": tenant,
            "model": model,
            "version": version,
            "out": str(self.model_dir / bundle_folder(model, version)),
            "promotion": promote.model_dump() if promote else None,
            "running": str(running.bundle.path) if promote and running else None,
        }

    def get(self, job_id: str, tenant: str | None = None) -> JobRecord:
        """The job, if it is a training job the caller may see (a tenant key: its own)."""
        rec = self.jobs.store.get(job_id)
        if rec is None or rec.meta.get("task") != TASK:
            raise unknown(job_id)
        if tenant is not None and rec.meta.get("tenant") != tenant:
            raise unknown(job_id)
        return rec

    def cancel(self, job_id: str, tenant: str | None = None) -> JobRecord:
        self.get(job_id, tenant)
        rec = self.jobs.store.cancel(job_id)
        if rec is None:
            raise unknown(job_id)
        return rec


def view(rec: JobRecord) -> dict[str, Any]:
    """The `TrainingJob` JSON of a record."""
    base = rec.view()
    meta = rec.meta
    return {
        "job_id": base["job_id"],
        "status": base["status"],
        "created_at": base["created_at"],
        "started_at": base["started_at"],
        "finished_at": base["finished_at"],
        "attempts": base["attempts"],
        "recoveries": base["recoveries"],
        "cancel_requested": base["cancel_requested"],
        "model": meta.get("model"),
        "version": meta.get("version"),
        "input": meta.get("input", {}),
        "options": meta.get("options", {}),
        "progress": base["progress"],
        "result": base["result"],
        "promote_if": meta.get("promotion"),
        "refit": (meta.get("manifest_extra") or {}).get("refit"),
        "error": base.get("error"),
    }


def unknown(job_id: str) -> NotFound:
    return NotFound(f"no training job {job_id!r}", field="job_id", kind="unknown_job")
