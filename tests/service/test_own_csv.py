"""The README's own-CSV walk-through, command for command, on a generated plant with a fault:
a `;`-separated file with a decimal comma and two label columns, as industrial exports come."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from model_training.evaluate import POINT_COLUMNS
from tests.support.processes import ROOT, free_port, wait_for

BIN = Path(sys.executable).parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- own-csv:start -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README lost its own-CSV walk-through"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip()]


def plant(n: int, seed: int, fault: tuple[int, int] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    temp = 60 + 5 * np.sin(2 * np.pi * t / 144) + rng.normal(0, 0.3, n)
    press = 2.0 + 0.02 * (temp - 60) + rng.normal(0, 0.01, n)
    flow = 10 * press + rng.normal(0, 0.1, n)
    label, change = np.zeros(n, np.int64), np.zeros(n, np.int64)
    if fault is not None:
        a, b = fault
        flow[a:b] -= 8.0  # the pump loses flow while pressure holds
        label[a:b] = 1
        change[a] = change[b] = 1
    stamps = pd.date_range("2026-11-01", periods=n, freq="1min", tz="UTC")
    return pd.DataFrame(
        {
            "time": stamps.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "temp": temp,
            "press": press,
            "flow": flow,
            "anomaly": label,
            "changepoint": change,
        }
    )


def write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, sep=";", decimal=",", index=False)


def test_readme_walkthrough_from_a_csv_to_an_alarm(tmp_path: Path) -> None:
    write(plant(3000, seed=1), tmp_path / "plant.csv")
    live = plant(600, seed=2, fault=(400, 460))
    live["time"] = pd.date_range("2026-11-04", periods=600, freq="1min", tz="UTC").strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    write(live, tmp_path / "plant_live.csv")
    port = str(free_port())
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "TAD_LOG_LEVEL": "warning"}
    server = None
    outputs = []
    try:
        for line in readme_commands():
            cmd = line.replace("8000", port)
            if cmd.endswith("&"):  # the service, in the background
                args = shlex.split(cmd[:-1]) + ["--port", port]
                server = subprocess.Popen(args, cwd=tmp_path, env=env)
                wait_for(
                    lambda: (
                        subprocess.run(
                            ["curl", "-sf", f"127.0.0.1:{port}/readyz"], capture_output=True
                        ).returncode
                        == 0
                    ),
                    60,
                    "the service",
                )
                continue
            done = subprocess.run(
                cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
            )
            assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
        replay = next(c for c in readme_commands() if c.startswith("tad replay"))
        again = subprocess.run(
            replay.replace("8000", port),
            shell=True,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )  # the same command twice: a clear hint, not a bare out-of-order error
        assert again.returncode != 0 and "already has later points" in again.stderr, again.stderr
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
    manifest = json.loads((tmp_path / "models" / "plant" / "manifest.json").read_text())
    assert manifest["channel_names"] == ["temp", "press", "flow"]  # no label is a channel
    assert manifest["table"] == {
        "sep": ";",
        "decimal": ",",
        "timestamp_column": "time",
        "label_columns": ["anomaly", "changepoint"],
    }
    assert manifest["training"]["n_validation"] == 600  # the whole file trained: 20 % calibrate
    assert "ALARM OPENED  plant-1" in outputs[1] and "2026-11-04T06:" in outputs[1]  # ISO times
    events = json.loads(outputs[2])["events"]
    opened = [e for e in events if e["kind"] == "opened"]
    assert opened and any(400 <= e["trigger_index"] < 470 for e in opened), events
    assert "flow" in opened[0]["top_channels"]
    # tad evaluate: the live file against the bundle by name, per-point output
    points = pd.read_csv(tmp_path / "eval" / "points" / "plant_live.csv")
    assert tuple(points.columns) == POINT_COLUMNS
    # every live row; labels are the union of both columns: 60 anomalous rows + the change at 460
    assert len(points) == 600 and points["label"].sum() == 61
    assert points["time"].iloc[400].startswith("2026-11-04T06:40")
    assert points["alarm"].iloc[400:460].mean() > 0.5 and points["alarm"].iloc[:380].sum() == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["entities"][0]["entity"] == "plant_live"
