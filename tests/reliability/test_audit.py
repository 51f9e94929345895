"""`make audit` (.ci/audit.py) with a stand-in pip-audit, since CI's network may not reach a
vulnerability service: known vulnerabilities fail the build; an audit that could not be
performed (service unreachable, or no package known to it) passes but says NOT PERFORMED, and
fails under TAD_AUDIT_STRICT=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ROOT

VULN = {"id": "PYSEC-0000-1", "fix_versions": ["2.0"], "aliases": [], "description": "x"}
CASES: dict[str, tuple[Any, int, str]] = {
    "clean": ([{"name": "a", "version": "1", "vulns": []}], 0, "1 packages audited, no known"),
    "vulnerable": (
        [
            {"name": "a", "version": "1", "vulns": [VULN]},
            {"name": "b", "version": "1", "vulns": []},
        ],
        1,
        "a 1: PYSEC-0000-1 (fixed in 2.0)",
    ),
    "nothing known": (
        [{"name": "a", "skip_reason": "Dependency not found on PyPI"}],
        0,
        "NOT PERFORMED — none of its 1 packages",
    ),
    "unreachable": (
        None,
        0,
        "NOT PERFORMED — vulnerability service unreachable: ConnectionError: no route",
    ),
}


def fake_venv(tmp_path: Path, deps: Any) -> Path:
    """A virtualenv whose pip-audit writes `deps` as its JSON report (None: fails offline)."""
    bin_ = tmp_path / "venv" / "bin"
    bin_.mkdir(parents=True)
    script = bin_ / "pip-audit"
    if deps is None:
        body = "import sys\nprint('ConnectionError: no route', file=sys.stderr)\nsys.exit(1)\n"
    else:
        report = json.dumps({"dependencies": deps, "fixes": []})
        body = (
            "import sys\nout = sys.argv[sys.argv.index('--output') + 1]\n"
            f"open(out, 'w').write({report!r})\n"
            "sys.exit(1 if 'vulns\": [{' in open(out).read() else 0)\n"
        )
    script.write_text(f"#!{sys.executable}\n{body}")
    script.chmod(0o755)
    return tmp_path / "venv"


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("strict", [False, True])
def test_audit_outcomes(tmp_path: Path, case: str, strict: bool) -> None:
    deps, rc, says = CASES[case]
    env = {**os.environ, "VENV": str(fake_venv(tmp_path, deps)), "TAD_AUDIT_STRICT": "1" * strict}
    run = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "audit.py")], capture_output=True, text=True, env=env
    )
    assert says in run.stdout, run.stdout + run.stderr
    expected = 1 if strict and "NOT PERFORMED" in says else rc
    assert run.returncode == expected, run.stdout


def test_audit_is_wired_into_ci() -> None:
    assert "make audit" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "\naudit: install" in makefile and ".ci/audit.py" in makefile
    assert "pip-audit" in (ROOT / "pyproject.toml").read_text()
