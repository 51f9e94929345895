"""Helpers for the service tests: bundles, data, a real uvicorn process, reference results."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from detector.bundle import MANIFEST, content_hash, load_bundle
from detector.runtime import online_detector
from detector.stream import StreamResults
from service.demo import DEMO_CHANNELS, demo_series

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ("index", "timestamp", "warmup", "score", "p_value", "evidence", "accumulated", "alarm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def train_bundle(out: Path, version: str = "v1") -> Path:
    from model_training.train import TrainConfig, train_and_export

    cfg = TrainConfig(epochs=2, d_model=16, expansion=1, progress=False, seed=0)
    return train_and_export(
        demo_series(2000, seed=1), list(DEMO_CHANNELS), out, cfg, "demo", version=version
    )


def clone_bundle(src: Path, dst: Path, **changes: Any) -> Path:
    """A copy of a bundle with manifest fields changed and its content hash recomputed:
    a new version as far as the service can tell."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / MANIFEST).read_text())
    manifest.update(changes)
    manifest["content_hash"] = content_hash(manifest)
    (dst / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    load_bundle(dst)
    return dst


def later(minutes: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


def series(n: int, seed: int = 3, anomaly: tuple[int, int] | None = (200, 230)) -> np.ndarray:
    return demo_series(n, seed=seed, anomaly=anomaly, start=2000)


def points(values: np.ndarray, start: int = 0, by_name: bool = False) -> list[dict[str, Any]]:
    """Points with seq = start + row, values as a list (or an object keyed by channel)."""
    out = []
    for i, row in enumerate(values.tolist()):
        vals: Any = dict(zip(DEMO_CHANNELS, row, strict=True)) if by_name else row
        out.append({"seq": start + i, "values": vals})
    return out


def reference(
    bundle: Path, values: np.ndarray, chunks: Iterable[int] | None = None, stream_id: str = "s"
) -> dict[str, Any]:
    """What `OnlineDetector.step` (the evaluator's core) gives on the same data, as columns."""
    b = load_bundle(bundle)
    det = online_detector(b, "cpu")  # the graphs the service scores with
    st = det.new_state(stream_id)
    ts = np.arange(len(values), dtype=np.float64)
    bounds = [0, *list(chunks or []), len(values)]
    parts: list[StreamResults] = [
        det.step(st, values[lo:hi], ts[lo:hi])
        for lo, hi in zip(bounds, bounds[1:], strict=False)
        if hi > lo
    ]
    out: dict[str, Any] = {c: np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS}
    out["events"] = [e for p in parts for e in p.events]
    return out


def collect(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Concatenate service results (JSON) column-wise; null → NaN."""
    rs = list(results)
    out: dict[str, Any] = {}
    for c in COLUMNS:
        vals = [v for r in rs for v in r[c]]
        out[c] = np.array([np.nan if v is None else v for v in vals])
    out["events"] = [e for r in rs for e in r["events"]]
    return out


def assert_same_results(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    """Exactly equal columns (NaN = NaN) and the same alarm events."""
    for c in COLUMNS:
        np.testing.assert_array_equal(
            np.asarray(got[c], np.float64), np.asarray(want[c], np.float64), err_msg=c
        )
    assert len(got["events"]) == len(want["events"])
    for g, w in zip(got["events"], want["events"], strict=True):
        w = (
            w
            if isinstance(w, dict)
            else {
                "kind": w.kind,
                "alarm_id": w.alarm_id,
                "at_index": w.at_index,
                "onset_index": w.onset_index,
                "offset_index": w.offset_index,
                "peak_evidence": w.peak_evidence,
                "top_channels": list(w.top_channels),
            }
        )
        for k in (
            "kind",
            "alarm_id",
            "at_index",
            "onset_index",
            "offset_index",
            "peak_evidence",
            "top_channels",
        ):
            assert g[k] == w[k], (k, g, w)


class ManagedProcess:
    """A subprocess a test starts, kills or stops; `stop_timeout_s` for a graceful exit."""

    proc: subprocess.Popen[bytes] | None = None
    stop_timeout_s: float = 10.0

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class ServerProcess(ManagedProcess):
    """A real `python -m service.cli serve` (uvicorn) in a subprocess."""

    def __init__(
        self,
        env: Mapping[str, str],
        args: Iterable[str] = (),
        module: str = "service.cli",
        log: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.env = {**os.environ, "TAD_LOG_LEVEL": "warning", **env, "TAD_PORT": str(self.port)}
        self.args = [sys.executable, "-m", module, "serve", *args]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
        wait_for(self._ready, timeout, f"service on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = self.log.read_text() if self.log else ""
            raise RuntimeError(f"service exited with {self.proc.returncode}: {log[-2000:]}")
        try:
            return httpx.get(f"{self.http}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
