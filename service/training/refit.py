"""Scheduled refits: a model that declares `refit` is retrained from its streams' recent history
every `every_s`, and the new version replaces it only if it passes the promotion check.

A training request with `refit` ({every_s, window_s}) writes the declaration into the bundle's
manifest, with the request's streams, options and promotion budget: the model carries its own
schedule, on the model volume every replica reads, and each promoted version inherits it. Every
`TAD_REFIT_CHECK_S` the scheduler looks at the serving versions: a version whose age has passed
k × every_s (k ≥ 1) gets its k-th refit job, trained on the last `window_s` of history (recorded
alarms left out). The job id is derived from (model, version, k), and the job store refuses an
id twice, so replicas on one Redis submit each refit once. Jobs run on the training queue like
any other (a `tad worker` or this process); the outcome — promoted, kept (the check failed, the
job says why), failed, skipped (no usable history) — is logged and counted in
`tad_refits_total{model,outcome}`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from service.auth import Principal
from service.clustering.jobs import QueueFull
from service.clustering.jobstore import JobExists
from service.deps import Services
from service.errors import ServiceError
from service.training.input import training_table
from service.training.jobs import TrainingJobs
from service.training.schemas import TrainingJobCreate

log = logging.getLogger(__name__)
_NAMESPACE = uuid.UUID("9b1f6f0e-4f1c-4c55-9c39-2f4b8f3a0c11")
OUTCOMES = ("submitted", "promoted", "kept", "failed", "skipped")


def refit_job_id(model: str, version: str, k: int) -> str:
    """The same id on every replica for a version's k-th refit (32 hex digits, like any job)."""
    return uuid.uuid5(_NAMESPACE, f"{model}\n{version}\n{k}").hex


def due_period(manifest: dict[str, Any], now_s: float) -> int:
    """How many refit periods have passed since the version was trained (0: none due)."""
    plan = manifest.get("refit") or {}
    every = float(plan.get("every_s") or 0)
    try:
        created = dt.datetime.fromisoformat(str(manifest["created_at"])).timestamp()
    except (KeyError, ValueError):
        return 0
    return int((now_s - created) // every) if every > 0 else 0


class RefitScheduler:
    def __init__(
        self, services: Services, training: TrainingJobs, registry: CollectorRegistry
    ) -> None:
        self.services = services
        self.training = training
        self.outcomes = Counter(
            "tad_refits", "scheduled refits by outcome", ["model", "outcome"], registry=registry
        )
        self.following: dict[str, str] = {}  # job id → model, submitted here, not finished
        self.tried: set[str] = set()  # job ids this process has submitted or skipped

    async def run(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                await self.tick()
            except Exception:  # a scheduler that dies silently is worse than a logged error
                log.exception("refit check failed; trying again in %.0f s", period_s)

    async def tick(self, now_s: float | None = None) -> None:
        now_s = time.time() if now_s is None else now_s
        for model in list(self.services.registry.active.values()):
            manifest = model.bundle.manifest
            k = due_period(manifest, now_s)
            if k >= 1:
                await self._submit(model.name, str(model.version), manifest["refit"], k, now_s)
        await asyncio.to_thread(self._follow)

    async def _submit(
        self, name: str, version: str, plan: dict[str, Any], k: int, now_s: float
    ) -> None:
        job_id = refit_job_id(name, version, k)
        if job_id in self.tried:
            return
        self.tried.add(job_id)
        req = TrainingJobCreate.model_validate(
            {
                "model": name,
                "streams": plan["streams"],
                "from": now_s - float(plan["window_s"]),
                "include_alarms": plan.get("include_alarms", False),
                "options": plan.get("options", {}),
                "promote_if": plan.get("promote_if") or {},
                "refit": {"every_s": plan["every_s"], "window_s": plan["window_s"]},
            }
        )
        who = Principal(role="admin", tenant=plan.get("tenant"))
        try:
            table = await training_table(self.services, req, who)
            await asyncio.to_thread(self.training.submit, req, table, who.tenant, job_id)
        except JobExists:
            return  # another replica submitted this refit
        except QueueFull:
            self.tried.discard(job_id)  # the queue is full: try again at the next check
            return
        except ServiceError as exc:
            log.warning("refit of %s skipped: %s", name, exc.message)
            self.outcomes.labels(name, "skipped").inc()
            return
        log.info("refit %d of %s version %s submitted as job %s", k, name, version, job_id)
        self.outcomes.labels(name, "submitted").inc()
        self.following[job_id] = name

    def _follow(self) -> None:
        for job_id, name in list(self.following.items()):
            rec = self.training.jobs.store.get(job_id)
            if rec is None or rec.status in ("queued", "running"):
                continue
            del self.following[job_id]
            seen = rec.view()
            result = seen.get("result") or {}
            if rec.status != "succeeded":
                outcome = "failed"
            else:
                outcome = "promoted" if result.get("promoted", True) else "kept"
            why = (result.get("promotion") or {}).get("reason") or seen.get("error") or ""
            log.info("refit job %s of %s: %s %s", job_id, name, outcome, why)
            self.outcomes.labels(name, outcome).inc()
