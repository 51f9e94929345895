"""Where clustering jobs live: the `JobStore` protocol, the job record, the in-memory store.

A job is a flat string hash (the same fields in memory and in Redis) plus its input as `.npz`
bytes. Every state change a worker makes carries its claim token: a worker whose lease expired
(and whose job was re-queued and claimed by another) can no longer write, so a job has one
outcome. The methods are synchronous: the worker threads call them directly, routes through
`asyncio.to_thread`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

Beat = Literal["ok", "cancel", "lost"]
INTERRUPTED = "interrupted: its worker stopped (crash or kill -9) {n} time(s); not retried"
DIED = "its process died {n} time(s), the last {reason}; not retried"
LOST_WHILE_CANCELLING = "cancelled; its worker stopped before it could"


class JobExists(Exception):
    """A job of that id is already stored: nothing was queued."""


@dataclass
class JobRecord:
    job_id: str
    fields: dict[str, str]

    @classmethod
    def from_hash(cls, job_id: str, raw: Mapping[Any, Any]) -> JobRecord:
        def s(x: Any) -> str:
            return x.decode() if isinstance(x, bytes) else str(x)

        return cls(job_id, {s(k): s(v) for k, v in raw.items()})

    @property
    def status(self) -> str:
        return self.fields.get("status", "failed")

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = orjson.loads(self.fields.get("meta", "{}"))
        return meta

    def view(self) -> dict[str, Any]:
        """The `ClusteringJob` JSON of this record."""
        f = self.fields

        def num(key: str) -> float | None:
            return float(f[key]) if f.get(key) else None

        meta = self.meta
        return {
            "job_id": self.job_id,
            "status": self.status,
            "created_at": float(f.get("created_at", 0)),
            "started_at": num("started_at"),
            "finished_at": num("finished_at"),
            "attempts": int(f.get("attempts", 0)),
            "recoveries": int(f.get("recoveries", 0)),
            "cancel_requested": f.get("cancel") == "1",
            "input": meta.get("input", {}),
            "options": meta.get("options", {}),
            "progress": orjson.loads(f["progress"]) if f.get("progress") else None,
            "result": orjson.loads(f["result"]) if f.get("result") else None,
            "error": f.get("error") or None,
        }


class JobStore(Protocol):
    kind: str

    def enqueue(self, job_id: str, fields: dict[str, str], data: bytes, max_queue: int) -> bool:
        """Store a queued job unless `max_queue` jobs are already waiting; JobExists when the
        id is taken (a scheduled refit's id is the same on every replica)."""
        ...

    def get(self, job_id: str) -> JobRecord | None: ...

    def data(self, job_id: str) -> bytes | None: ...

    def claim(self, worker: str, lease_s: float) -> tuple[str, str] | None:
        """Take the oldest queued job: (job id, claim token), or None."""
        ...

    def heartbeat(self, job_id: str, token: str, lease_s: float) -> Beat: ...

    def progress(self, job_id: str, token: str, progress: str) -> bool: ...

    def finish(
        self, job_id: str, token: str, status: str, result: str = "", error: str = ""
    ) -> bool: ...

    def requeue(self, job_id: str, token: str) -> bool:
        """Put a running job back at the head of the queue (the service is stopping)."""
        ...

    def recover(self, max_recoveries: int) -> list[str]:
        """Re-queue (or fail) running jobs whose lease expired; return their ids."""
        ...

    def died(self, job_id: str, token: str, max_recoveries: int, reason: str) -> str:
        """The job's process died: re-queue it at the head, or end it once it has died more
        than `max_recoveries` times (or was being cancelled). Returns the new status."""
        ...

    def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a queued job now; ask a running one to stop. None: no such job."""
        ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


class MemoryJobStore:
    """Jobs in process memory (lost on restart). One lock; finished jobs are kept for
    `keep_s` seconds, at most `keep_jobs` of them."""

    kind = "memory"

    def __init__(self, keep_s: float, keep_jobs: int) -> None:
        self._jobs: dict[str, dict[str, str]] = {}
        self._data: dict[str, bytes] = {}
        self._queue: deque[str] = deque()
        self._leases: dict[str, float] = {}
        self._finished: deque[tuple[float, str]] = deque()
        self._keep_s, self._keep_jobs = keep_s, keep_jobs
        self._lock = threading.Lock()

    def enqueue(self, job_id: str, fields: dict[str, str], data: bytes, max_queue: int) -> bool:
        with self._lock:
            self._expire()
            if job_id in self._jobs:
                raise JobExists(job_id)
            if len(self._queue) >= max_queue:
                return False
            self._jobs[job_id] = dict(fields)
            self._data[job_id] = data
            self._queue.append(job_id)
            return True

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            self._expire()
            f = self._jobs.get(job_id)
            return None if f is None else JobRecord(job_id, dict(f))

    def data(self, job_id: str) -> bytes | None:
        with self._lock:
            return self._data.get(job_id)

    def claim(self, worker: str, lease_s: float) -> tuple[str, str] | None:
        with self._lock:
            while self._queue:
                job_id = self._queue.popleft()
                f = self._jobs.get(job_id)
                if f is None or f["status"] != "queued":
                    continue
                attempts = int(f.get("attempts", 0)) + 1
                token = f"{worker}:{attempts}"
                f.update(status="running", token=token, attempts=str(attempts))
                f["started_at"] = repr(time.time())
                f.pop("progress", None)
                self._leases[job_id] = time.monotonic() + lease_s
                return job_id, token
            return None

    def _owned(self, job_id: str, token: str) -> dict[str, str] | None:
        f = self._jobs.get(job_id)
        return f if f is not None and f.get("token") == token else None

    def heartbeat(self, job_id: str, token: str, lease_s: float) -> Beat:
        with self._lock:
            f = self._owned(job_id, token)
            if f is None or f["status"] != "running":
                return "lost"
            self._leases[job_id] = time.monotonic() + lease_s
            return "cancel" if f.get("cancel") == "1" else "ok"

    def progress(self, job_id: str, token: str, progress: str) -> bool:
        with self._lock:
            f = self._owned(job_id, token)
            if f is not None:
                f["progress"] = progress
            return f is not None

    def _close(self, job_id: str, f: dict[str, str], status: str, error: str = "") -> None:
        f.update(status=status, finished_at=repr(time.time()))
        if error:
            f["error"] = error
        f.pop("token", None)
        self._leases.pop(job_id, None)
        self._data.pop(job_id, None)
        self._finished.append((time.monotonic(), job_id))

    def finish(
        self, job_id: str, token: str, status: str, result: str = "", error: str = ""
    ) -> bool:
        with self._lock:
            f = self._owned(job_id, token)
            if f is None:
                return False
            if result:
                f["result"] = result
            self._close(job_id, f, status, error)
            return True

    def requeue(self, job_id: str, token: str) -> bool:
        with self._lock:
            f = self._owned(job_id, token)
            if f is None:
                return False
            f["status"] = "queued"
            for k in ("token", "progress"):
                f.pop(k, None)
            self._leases.pop(job_id, None)
            self._queue.appendleft(job_id)
            return True

    def recover(self, max_recoveries: int) -> list[str]:
        with self._lock:
            now = time.monotonic()
            expired = [j for j, t in self._leases.items() if t <= now]
            for job_id in expired:
                del self._leases[job_id]
                f = self._jobs.get(job_id)
                if f is None or f["status"] != "running":
                    continue
                self._lost(job_id, f, max_recoveries, INTERRUPTED.format)
            return expired

    def died(self, job_id: str, token: str, max_recoveries: int, reason: str) -> str:
        with self._lock:
            f = self._owned(job_id, token)
            if f is None:
                return "lost"
            return self._lost(job_id, f, max_recoveries, lambda n: DIED.format(n=n, reason=reason))

    def _lost(
        self,
        job_id: str,
        f: dict[str, str],
        max_recoveries: int,
        failure: Callable[..., str],
    ) -> str:
        """Count one more loss of the job's worker: re-queue it at the head, or end it
        (cancelled if a cancel was pending, failed with `failure(n=…)` past the limit)."""
        n = int(f.get("recoveries", 0)) + 1
        f["recoveries"] = str(n)
        f.pop("token", None)
        self._leases.pop(job_id, None)
        if f.get("cancel") == "1":
            self._close(job_id, f, "cancelled", LOST_WHILE_CANCELLING)
        elif n > max_recoveries:
            self._close(job_id, f, "failed", failure(n=n))
        else:
            f["status"] = "queued"
            f.pop("progress", None)
            self._queue.appendleft(job_id)
        return f["status"]

    def cancel(self, job_id: str) -> JobRecord | None:
        with self._lock:
            f = self._jobs.get(job_id)
            if f is None:
                return None
            if f["status"] == "queued":
                self._queue.remove(job_id)
                f["cancel"] = "1"
                self._close(job_id, f, "cancelled", "cancelled by request")
            elif f["status"] == "running":
                f["cancel"] = "1"
            return JobRecord(job_id, dict(f))

    def _expire(self) -> None:
        """Forget finished jobs past their keep time or past the count limit."""
        now = time.monotonic()
        while self._finished and (
            len(self._finished) > self._keep_jobs or self._finished[0][0] + self._keep_s < now
        ):
            _, job_id = self._finished.popleft()
            self._jobs.pop(job_id, None)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        return None
