"""Dependency audit (`make audit`): pip-audit over the virtualenv CI tested and over the runtime
image's pinned requirements (deploy/docker/requirements.txt).

Known vulnerabilities fail the build. An audit that could not be performed does not, but says so
loudly: the vulnerability service unreachable (no network), or none of the packages known to it
(pip-audit then reports "No known vulnerabilities found" although it checked nothing — this
script counts what was really audited). Set TAD_AUDIT_STRICT=1 to fail in those cases too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("VENV", ROOT / ".venv"))
TARGETS = {
    "virtualenv": ["--skip-editable"],
    "runtime image pins": [
        "--requirement",
        str(ROOT / "deploy" / "docker" / "requirements.txt"),
        "--no-deps",
        "--disable-pip",
    ],
}


def audit(name: str, args: list[str]) -> tuple[int, int, list[str], str | None]:
    """(audited, skipped, vulnerabilities, why the audit could not run)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        cmd = [str(VENV / "bin" / "pip-audit"), *args, "--progress-spinner", "off"]
        cmd += ["--format", "json", "--output", str(out)]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if not out.exists() or not out.read_text().strip():
            lines = [ln for ln in (run.stderr or run.stdout).splitlines() if ln.strip()]
            return 0, 0, [], lines[-1] if lines else f"pip-audit exited with {run.returncode}"
        deps = json.loads(out.read_text())["dependencies"]
    audited = [d for d in deps if "skip_reason" not in d]
    vulns = [
        f"{d['name']} {d['version']}: {v['id']} (fixed in {', '.join(v['fix_versions']) or '?'})"
        for d in audited
        for v in d.get("vulns", [])
    ]
    return len(audited), len(deps) - len(audited), vulns, None


def main() -> int:
    strict = os.environ.get("TAD_AUDIT_STRICT") == "1"
    failed = not_performed = False
    for name, args in TARGETS.items():
        audited, skipped, vulns, why = audit(name, args)
        if why is not None:
            print(f"audit {name}: NOT PERFORMED — vulnerability service unreachable: {why}")
            not_performed = True
        elif audited == 0:
            print(
                f"audit {name}: NOT PERFORMED — none of its {skipped} packages is known to the "
                "vulnerability service (versions not on PyPI?), so nothing was checked"
            )
            not_performed = True
        elif vulns:
            print(f"audit {name}: {len(vulns)} known vulnerabilities:")
            print("\n".join(f"  {v}" for v in vulns))
            failed = True
        else:
            print(
                f"audit {name}: {audited} packages audited, no known vulnerabilities"
                + (f" ({skipped} could not be audited)" if skipped else "")
            )
    if failed:
        return 1
    if not_performed and strict:
        print("TAD_AUDIT_STRICT=1: an audit that was not performed fails the build")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
