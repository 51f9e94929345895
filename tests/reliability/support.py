"""Helpers for the reliability tests: a private redis-server that can be killed and restarted on
its own data directory, process memory, and comparing partial result streams."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.service.helpers import COLUMNS, ManagedProcess, free_port, wait_for

EVENT_KEYS = (
    "kind",
    "alarm_id",
    "at_index",
    "onset_index",
    "offset_index",
    "peak_evidence",
    "top_channels",
)


class RedisServer(ManagedProcess):
    """A redis-server on a fixed port and data directory, persisted like docker-compose.yml's
    (append-only file, fsync every second), so it can be killed and come back with its data.
    `stop` is SIGTERM: Redis writes what it has and exits (a graceful restart)."""

    stop_timeout_s = 15.0

    def __init__(self, workdir: Path, *extra: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI"):
                pytest.fail("redis-server is required in CI (apt-get install redis-server)")
            pytest.skip("redis-server not installed")
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--enable-debug-command",
            "local",
            *self.extra,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.pings, 15, f"redis-server on {self.port}")
        return self

    def client(self) -> Any:
        import redis

        return redis.Redis(port=self.port, socket_timeout=10)

    def pings(self) -> bool:
        try:
            r = self.client()
            try:
                return bool(r.ping())
            finally:
                r.close()
        except Exception:
            return False


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def event_fields(e: Any) -> dict[str, Any]:
    """The comparable fields of a service event (dict) or a core AlarmEvent."""
    if isinstance(e, Mapping):
        return {k: e[k] for k in EVENT_KEYS}
    return {
        "kind": e.kind,
        "alarm_id": e.alarm_id,
        "at_index": e.at_index,
        "onset_index": e.onset_index,
        "offset_index": e.offset_index,
        "peak_evidence": e.peak_evidence,
        "top_channels": list(e.top_channels),
    }


def assert_replies_match(replies: Iterable[Mapping[str, Any]], want: Mapping[str, Any]) -> set[int]:
    """Every scored point in `replies` equals the uninterrupted reference at its index, and its
    events are the reference's events at those indexes. Returns the indexes scored.

    Scores may differ in the last float32 bits (≈ 1e-9 relative): after a restart the embedding
    cache is rebuilt from the raw ring buffer in other batch shapes than it was rolled in."""
    seen: set[int] = set()
    want_events = [event_fields(e) for e in want["events"]]
    for r in replies:
        idx = np.asarray(r["index"], dtype=np.int64)
        assert not seen.intersection(idx.tolist()), f"points scored twice: {idx}"
        seen.update(idx.tolist())
        for c in COLUMNS:
            got = np.array([np.nan if v is None else v for v in r[c]], dtype=np.float64)
            want_c = np.asarray(want[c], np.float64)[idx]
            if c in ("score", "accumulated"):
                np.testing.assert_allclose(got, want_c, rtol=1e-6, atol=1e-12, err_msg=c)
            else:
                np.testing.assert_array_equal(got, want_c, err_msg=c)
        expected = [e for e in want_events if e["at_index"] in set(idx.tolist())]
        assert [event_fields(e) for e in r["events"]] == expected
    return seen


def assert_history(history: Sequence[Mapping[str, Any]], want: Mapping[str, Any]) -> None:
    """The stored alarm history is exactly the uninterrupted run's events, in order."""
    assert [event_fields(e) for e in history] == [event_fields(e) for e in want["events"]]
