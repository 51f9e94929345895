"""The job-store contract, identical in memory and in a real Redis: bounded FIFO queue, claim
tokens that fence a worker whose lease expired, recovery (re-queue, then fail), cancellation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from service.clustering.jobstore import JobExists, JobStore, MemoryJobStore
from service.clustering.redis_jobs import RedisJobStore


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, redis_prefix: str) -> Iterator[JobStore]:
    s: JobStore
    if request.param == "memory":
        s = MemoryJobStore(keep_s=60, keep_jobs=10)
    else:
        s = RedisJobStore(request.getfixturevalue("redis_url"), redis_prefix, keep_s=60)
    yield s
    s.close()


def put(store: JobStore, job_id: str, max_queue: int = 10) -> bool:
    fields = {"status": "queued", "created_at": repr(time.time()), "meta": "{}"}
    return store.enqueue(job_id, fields, f"data-{job_id}".encode(), max_queue)


def test_queue_is_bounded_and_fifo(store: JobStore) -> None:
    assert put(store, "a", 2) and put(store, "b", 2)
    assert not put(store, "c", 2)
    assert store.get("c") is None
    assert store.claim("w", 10) == ("a", "w:1")
    assert put(store, "c", 2)  # a left the queue
    assert store.claim("w", 10) == ("b", "w:1")
    rec = store.get("a")
    assert rec is not None and rec.status == "running" and rec.view()["started_at"] is not None
    assert store.data("a") == b"data-a"


def test_a_job_id_is_stored_once(store: JobStore) -> None:
    """A scheduled refit's id is the same on every replica: the second enqueue is refused."""
    assert put(store, "a", 5)
    with pytest.raises(JobExists):
        put(store, "a", 5)
    assert store.claim("w", 10) == ("a", "w:1") and store.claim("w", 10) is None


def test_expired_lease_requeues_and_fences_the_old_worker(store: JobStore) -> None:
    put(store, "a")
    job, token = store.claim("w1", 0.2) or ("", "")
    assert store.progress(job, token, '{"epoch": 1, "epochs": 3, "loss": 1.0}')
    assert store.heartbeat(job, token, 0.2) == "ok"
    assert store.recover(max_recoveries=1) == []  # lease still valid
    time.sleep(0.35)
    assert store.recover(max_recoveries=1) == ["a"]
    rec = store.get("a")
    assert rec is not None
    view = rec.view()
    assert view["status"] == "queued" and view["recoveries"] == 1 and view["progress"] is None
    # the first worker is fenced off: it cannot report progress, finish, or renew
    assert store.heartbeat("a", token, 10) == "lost"
    assert not store.progress("a", token, "{}")
    assert not store.finish("a", token, "succeeded", result='{"labels": []}')
    assert store.claim("w2", 10) == ("a", "w2:2")
    assert store.finish("a", "w2:2", "succeeded", result='{"labels": [0]}')
    rec = store.get("a")
    assert rec is not None
    view = rec.view()
    assert view["status"] == "succeeded" and view["attempts"] == 2
    assert view["result"] == {"labels": [0]} and view["finished_at"] is not None
    assert store.data("a") is None  # the input is dropped once the job is over


def test_recovery_gives_up_after_max_recoveries(store: JobStore) -> None:
    put(store, "a")
    store.claim("w", 0.1)
    time.sleep(0.2)
    assert store.recover(max_recoveries=0) == ["a"]
    rec = store.get("a")
    assert rec is not None and rec.status == "failed"
    assert "interrupted" in (rec.view()["error"] or "") and rec.view()["recoveries"] == 1
    assert store.claim("w", 1) is None


def test_cancel_queued_running_finished_and_unknown(store: JobStore) -> None:
    put(store, "q")
    put(store, "r")
    rec = store.cancel("q")
    assert rec is not None and rec.status == "cancelled" and rec.view()["cancel_requested"]
    job, token = store.claim("w", 10) or ("", "")
    assert job == "r"  # the cancelled job is never claimed
    rec = store.cancel("r")
    assert rec is not None and rec.status == "running" and rec.view()["cancel_requested"]
    assert store.heartbeat("r", token, 10) == "cancel"
    assert store.finish("r", token, "cancelled", error="cancelled by request")
    rec = store.cancel("r")
    assert rec is not None and rec.status == "cancelled"
    assert store.cancel("nope") is None


def test_a_lost_worker_of_a_cancelled_job_ends_it_cancelled(store: JobStore) -> None:
    put(store, "a")
    store.claim("w", 0.1)
    store.cancel("a")
    time.sleep(0.2)
    store.recover(max_recoveries=5)
    rec = store.get("a")
    assert rec is not None and rec.status == "cancelled"


def test_requeue_at_shutdown_goes_to_the_head(store: JobStore) -> None:
    put(store, "a")
    put(store, "b")
    job, token = store.claim("w", 10) or ("", "")
    assert store.requeue(job, token)
    assert not store.requeue(job, token)  # the token is spent
    claimed: Any = store.claim("w2", 10)
    assert claimed == ("a", "w2:2")
    rec = store.get("a")
    assert rec is not None and rec.view()["recoveries"] == 0


def test_memory_store_forgets_old_finished_jobs() -> None:
    s = MemoryJobStore(keep_s=60, keep_jobs=2)
    for name in "abc":
        put(s, name)
        job, token = s.claim("w", 10) or ("", "")
        s.finish(job, token, "succeeded", result="{}")
    assert s.get("a") is None and s.get("b") is not None and s.get("c") is not None


def test_a_job_whose_process_died_is_requeued_once_then_failed(store: JobStore) -> None:
    put(store, "a")
    put(store, "b")
    job, token = store.claim("w", 10) or ("", "")
    assert store.died(job, "w:9", 1, "killed by SIGKILL") == "lost"  # fenced by the token
    assert store.died(job, token, 1, "killed by SIGKILL") == "queued"
    rec = store.get("a")
    assert rec is not None and rec.view()["recoveries"] == 1 and rec.view()["progress"] is None
    assert store.recover(max_recoveries=1) == []  # its lease is gone with it
    job, token = store.claim("w", 10) or ("", "")
    assert job == "a"  # back at the head of the queue
    assert store.died(job, token, 1, "killed by SIGKILL (out of memory?)") == "failed"
    rec = store.get("a")
    assert rec is not None and rec.status == "failed"
    error = rec.view()["error"] or ""
    assert error.startswith("its process died 2 time(s), the last killed by SIGKILL")
    assert store.data("a") is None and store.claim("w", 10) == ("b", "w:1")


def test_a_died_process_of_a_cancelled_job_ends_it_cancelled(store: JobStore) -> None:
    put(store, "a")
    job, token = store.claim("w", 10) or ("", "")
    store.cancel("a")
    assert store.died(job, token, 5, "exited with status 1 and no result") == "cancelled"
