"""bench/soak.py, in miniature: the script runs, drives WebSocket streams and POST batches through
a service it starts (with its own redis-server), checks every answer and prints its figures.
The real soak (1,000 streams for minutes) is the script itself; see docs/reliability.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT


def test_soak_script_runs_and_reports(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    args = [
        sys.executable,
        str(ROOT / "bench" / "soak.py"),
        "--streams", "60",
        "--minutes", "0.12",
        "--rate", "4",
        "--post-streams", "10",
        "--post-interval", "0.5",
        "--sample-s", "1",
        "--model-dir", str(model_dir),
        "--json", str(out),
    ]  # fmt: skip
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "WebSocket latency ms" in run.stdout and "service RSS MB" in run.stdout
    assert run.stdout.rstrip().endswith("OK")
    report = json.loads(out.read_text())
    summary = report["summary"]
    assert summary["errors"] == [] and summary["lost_or_reordered"] == 0
    assert summary["count_mismatches"] == 0
    assert summary["messages"] > 60 * 4 * 7 * 0.5  # most of the intended messages went through
    assert summary["post_requests"] > 5
    assert all(s["rss_mb"] for s in report["samples"])
