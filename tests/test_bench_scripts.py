"""Every script in bench/ still imports: the figures in the README come from them, and a rename
in the service (a helper a benchmark borrows) must fail here, not the next time someone runs
`make perf`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

# aeon is not a dependency (its own docstring says why): the one script that needs it
NEEDS_OTHER_PACKAGES = {"minirocket_reference"}
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if p.stem not in NEEDS_OTHER_PACKAGES)


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_bench_script_imports(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # runs module level only: each script's work is in main()
