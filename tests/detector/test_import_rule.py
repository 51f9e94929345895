"""The detector core stays a pure library: no web framework, store, metrics client or asyncio."""

from __future__ import annotations

import ast
from pathlib import Path

import detector

FORBIDDEN = {
    "fastapi",
    "starlette",
    "uvicorn",
    "redis",
    "prometheus_client",
    "asyncio",
    "httpx",
    "websockets",
    "torch",
    "service",
    "model_training",
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_detector_imports_nothing_from_the_edges() -> None:
    files = sorted(Path(detector.__file__).parent.glob("*.py"))
    assert len(files) >= 5
    offenders = {f.name: imported_roots(f) & FORBIDDEN for f in files}
    assert not any(offenders.values()), offenders


def test_the_rule_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom redis.asyncio import Redis\n")
    assert imported_roots(bad) & FORBIDDEN == {"asyncio", "redis"}
