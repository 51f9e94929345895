"""A real SMD machine replayed through a running service equals `tad evaluate`'s online core.

    python bench/replay_parity.py --data ../shared/data/SMD --bundles runs/smd/bundles \\
        --machine machine-1-2

Starts `tad serve` on a free loopback port with the bundles directory as its model directory,
replays the machine's test series over WebSocket (50 points per message) and compares every
score, evidence, accumulated evidence and alarm span with `model_training.evaluate.run_entity`.
Prints the comparison and exits non-zero on any difference.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.bundle import load_bundle  # noqa: E402
from model_training.cli import bundle_dir_name  # noqa: E402
from model_training.data import load_smd  # noqa: E402
from model_training.evaluate import run_entity  # noqa: E402
from service.replay import ReplayData, replay  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(
    data: Annotated[Path, typer.Option()] = Path("../shared/data/SMD"),
    bundles: Annotated[Path, typer.Option()] = Path("runs/smd/bundles"),
    machine: str = "machine-1-2",
    batch: int = 50,
) -> None:
    (ent,) = load_smd(data, [machine])
    port = free_port()
    env = os.environ | {"TAD_MODEL_DIR": str(bundles), "TAD_PORT": str(port)}
    tad = Path(sys.executable).with_name("tad")
    server = subprocess.Popen([str(tad), "serve"], env=env, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        replies: list[dict[str, Any]] = []
        values = np.asarray(ent.test, np.float64)
        t0 = time.perf_counter()
        replay(
            f"ws://127.0.0.1:{port}",
            f"parity-{machine}",
            ReplayData(ent.channel_names, values, None),
            batch=batch,
            model=machine,
            echo=lambda _: None,
            on_result=replies.append,
        )
        seconds = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(10)
    run = run_entity(ent, load_bundle(bundles / bundle_dir_name(machine)))
    ok = True
    for column in ("score", "evidence", "accumulated"):
        got = np.array([np.nan if v is None else v for r in replies for v in r[column]])
        same = np.array_equal(got, getattr(run, column), equal_nan=True)
        ok &= same
        print(f"{column:12s} {len(got)} points, identical: {same}")
    alarmed = np.zeros(len(values), np.int8)
    for r in replies:
        for e in r["events"]:
            if e["kind"] == "closed":
                alarmed[e["onset_index"] : e["offset_index"] + 1] = 1
    # an alarm still open at the end has no offset yet; the evaluator closes it at the end
    spans_same = bool(np.array_equal(alarmed, run.predictions))
    print(
        f"alarm spans  identical: {spans_same} ({run.extra['alarms']} alarms); "
        f"replay took {seconds:.1f} s ({len(values) / seconds:.0f} points/s, {batch} per message)"
    )
    ok &= spans_same
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    typer.run(main)
