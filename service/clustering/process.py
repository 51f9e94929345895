"""One clustering job in its own OS process: a memory cap the kernel enforces, and a cancel that
ends it at once.

Why a process per job rather than the runner's thread: a job inside the ingest process can
take the whole service down (an out-of-memory kill stops streaming too), and a thread cannot be
stopped mid-kernel. The child is a fresh interpreter (`python -m service.clustering.process`:
no copy of the parent's threads, sockets or event loop, and no re-import of its main module
as multiprocessing's spawn would do). It lowers its own priority so ingest keeps the CPU, and
caps its writable memory (RLIMIT_DATA, which counts heap and private anonymous mappings,
i.e. every tensor) at
TAD_CLUSTERING_MAX_MEMORY_MB: an allocation beyond it fails inside the child, and the job
fails with that reason while ingest carries on. RLIMIT_AS would also count the shared
libraries' mappings (~1.3 GB of address space for torch alone), not memory used. Inside a
container whose memory limit is below the cap, its `oom_score_adj` of 1000 makes the kernel's
OOM killer take the job, never the service; the job then counts as died (below).

Messages go child → parent as orjson bytes over a pipe; the input goes parent → child as raw
`.npz` bytes (multiprocessing's framing on two OS pipes, never its pickling). Nothing a user
sent is unpickled anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import orjson

from service.clustering.work import Stopped

log = logging.getLogger(__name__)

CHILD_NICE = 10
OOM_SCORE_ADJ = 1000  # the kernel's OOM killer picks this process before the service
MEMORY_HINT = "lower options.batch_size, options.hidden or the series' length T"


class JobFailed(Exception):
    """The job's code raised: a final outcome (the same input would fail again)."""


class WorkerDied(Exception):
    """The job's process ended without an outcome (killed by a signal or crashed)."""


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc)
    return (
        isinstance(exc, MemoryError)
        or "can't allocate memory" in text
        or ("not enough memory" in text)
    )


def _child(inbox: Connection, outbox: Connection, threads: int, memory_limit_bytes: int) -> None:
    """The job process: read the input, train, send progress and then one outcome."""
    import resource
    import threading

    with contextlib.suppress(OSError):
        os.nice(CHILD_NICE)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
        fh.write(str(OOM_SCORE_ADJ))  # under a container's memory limit, the job goes first
    if memory_limit_bytes > 0:
        resource.setrlimit(resource.RLIMIT_DATA, (memory_limit_bytes, memory_limit_bytes))
    from service.clustering import work

    def send(kind: str, body: Any) -> None:
        outbox.send_bytes(orjson.dumps({"kind": kind, "body": body}))

    try:
        meta = orjson.loads(inbox.recv_bytes())
        data = inbox.recv_bytes()
        threading.Thread(target=_exit_with_parent, args=(inbox,), daemon=True).start()
        result = work.run(data, meta, threads, lambda rec: send("progress", rec), lambda: False)
    except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the parent
        if _is_out_of_memory(exc):
            limit_mb = memory_limit_bytes >> 20
            send(
                "error",
                f"out of memory: the job needed more than TAD_CLUSTERING_MAX_MEMORY_MB = "
                f"{limit_mb} MB ({type(exc).__name__}); {MEMORY_HINT}",
            )
        elif isinstance(exc, ImportError):
            send("import_error", f"{type(exc).__name__}: {exc}")
        else:
            send("error", f"{type(exc).__name__}: {exc}")
        return
    send("result", result)


def _exit_with_parent(inbox: Connection) -> None:
    """End this process when the parent's end of the pipe closes: the parent died (kill -9),
    so nobody would read the outcome, and the memory must go back to ingest's host now."""
    with contextlib.suppress(EOFError, OSError):
        inbox.recv_bytes()
    os._exit(3)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with status {code} and no result"


def run_isolated(
    data: bytes,
    meta: dict[str, Any],
    threads: int,
    memory_limit_bytes: int,
    progress: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool],
    poll_s: float = 0.1,
) -> dict[str, Any]:
    """Run `work.run` in a child process; return its result.

    Raises `Stopped` (the child was killed because `should_stop()` said so), `JobFailed` (the
    job raised; final), `ImportError` (training cannot run here) or `WorkerDied`.
    """
    down_r, down_w = os.pipe()  # parent → child: meta, then data
    up_r, up_w = os.pipe()  # child → parent: progress, then one outcome
    cmd = [sys.executable, "-m", "service.clustering.process"]
    cmd += [str(down_r), str(up_w), str(threads), str(memory_limit_bytes)]
    try:
        threads_env = {v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
        proc = subprocess.Popen(
            cmd,
            pass_fds=(down_r, up_w),
            stdin=subprocess.DEVNULL,
            env={**os.environ, **threads_env},
        )
    finally:
        os.close(down_r)
        os.close(up_w)
    to_child, from_child = Connection(down_w, readable=False), Connection(up_r, writable=False)
    try:
        try:
            to_child.send_bytes(orjson.dumps(meta))
            to_child.send_bytes(data)
        except OSError:  # the child died before it read its input
            raise WorkerDied(_exit_reason(proc.wait(5))) from None
        return _follow(proc, from_child, progress, should_stop, poll_s)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        to_child.close()
        from_child.close()


def _follow(
    proc: subprocess.Popen[bytes],
    conn: Connection,
    progress: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool],
    poll_s: float,
) -> dict[str, Any]:
    """Relay progress until the child sends an outcome, dies, or must be stopped."""
    while True:
        if should_stop():
            t0 = time.monotonic()
            proc.kill()
            proc.wait(5)
            log.info("job process %s killed in %.3f s", proc.pid, time.monotonic() - t0)
            raise Stopped("stopped by killing its process")
        if conn.poll(poll_s):
            try:
                msg = orjson.loads(conn.recv_bytes())
            except (EOFError, OSError):
                raise WorkerDied(_exit_reason(proc.wait(5))) from None
            kind, body = msg["kind"], msg["body"]
            if kind == "progress":
                progress(body)
            elif kind == "result":
                result: dict[str, Any] = body
                return result
            elif kind == "import_error":
                raise ImportError(body)
            else:
                raise JobFailed(body)
        elif proc.poll() is not None:
            raise WorkerDied(_exit_reason(proc.returncode))


if __name__ == "__main__":  # the child: python -m service.clustering.process IN OUT THREADS BYTES
    _in, _out, _threads, _limit = (int(a) for a in sys.argv[1:5])
    _child(Connection(_in, writable=False), Connection(_out, readable=False), _threads, _limit)
