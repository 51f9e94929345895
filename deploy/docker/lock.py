"""Write the pinned requirement files the Docker images install, from the tested virtualenv.

    .venv/bin/python deploy/docker/lock.py

Resolves the project's runtime dependencies (`pip install .`) and the `train` extra with every
version constrained to what `.venv` has installed (the set `make test` passed with), so the
images run the same versions as CI. Writes deploy/docker/requirements.txt (runtime: ONNX Runtime
CPU, no torch) and deploy/docker/requirements-train.txt (what the trainer adds on top).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROJECT = "ccm-tad-service"
HEADER = """\
# {what}
# Pinned by deploy/docker/lock.py from the virtualenv CI tested. Do not edit by hand:
# change pyproject.toml, `make install`, then re-run the script.
"""


def resolve(target: str, constraints: Path) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--dry-run",
                "--ignore-installed",
                "--report",
                str(report),
                "-c",
                str(constraints),
                target,
            ],
            cwd=ROOT,
            check=True,
        )
        installs = json.loads(report.read_text())["install"]
    return {
        i["metadata"]["name"]: i["metadata"]["version"]
        for i in installs
        if i["metadata"]["name"] != PROJECT
    }


def write(path: Path, pins: dict[str, str], what: str) -> None:
    lines = [
        f"{name}=={version}" for name, version in sorted(pins.items(), key=lambda kv: kv[0].lower())
    ]
    path.write_text(HEADER.format(what=what) + "\n".join(lines) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({len(lines)} packages)")


def main() -> None:
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(freeze)
        constraints = Path(f.name)
    try:
        runtime = resolve(".", constraints)
        train = resolve(".[train]", constraints)
    finally:
        constraints.unlink()
    write(HERE / "requirements.txt", runtime, "runtime: pip install .")
    extra = {k: v for k, v in train.items() if k not in runtime}
    write(HERE / "requirements-train.txt", extra, "the train extra, on top of requirements.txt")


if __name__ == "__main__":
    main()
