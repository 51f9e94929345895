"""A flame graph of the server under the one-point-per-message WebSocket load (issue 14).

    python bench/flame.py [--connections 100] [--points 1] [--out docs/profiles/ws-100x1.svg]

Starts `tad serve` on one core with an SMD-sized model (as bench/perf.py does), warms 100
WebSocket streams, then records the server with py-spy (sampling, 250 Hz, every thread,
idle time left out) while a load generator on the other core sends one reading per message,
and writes an SVG flame graph: each box is a function, its width the share of samples it was
on the stack.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))

import perf  # noqa: E402  (bench/, beside this file)

ROOT = Path(__file__).resolve().parents[1]


def main(
    connections: Annotated[int, typer.Option(help="concurrent WebSocket streams")] = 100,
    points: Annotated[int, typer.Option(help="points per message")] = 1,
    messages: Annotated[int, typer.Option(help="timed messages per connection")] = 500,
    out: Annotated[Path, typer.Option(help="SVG to write")] = ROOT / "docs/profiles/ws-100x1.svg",
) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise typer.BadParameter(
            "py-spy is not installed (pip install py-spy)", param_hint="py-spy"
        )
    models = Path(tempfile.mkdtemp(prefix="tad-flame-")) / "models"
    perf.smd_sized_bundle(models)
    server = perf.Server(models, "websockets-sansio")
    try:
        perf.in_process(perf.ws_load, server.port, connections, points, 5, "flame")  # warm
        out.parent.mkdir(parents=True, exist_ok=True)
        record = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(server.proc.pid),
                "--rate",
                "250",
                "--nonblocking",
                "--format",
                "flamegraph",
                "--output",
                str(out),
            ],
        )
        time.sleep(1.0)
        pps, lat = perf.in_process(perf.ws_load, server.port, connections, points, messages, "f")
        record.send_signal(2)  # py-spy writes the graph on SIGINT
        record.wait(60)
    finally:
        server.stop()
    typer.echo(f"{pps:,.0f} points/s while recording; flame graph in {out}")


if __name__ == "__main__":
    typer.run(main)
