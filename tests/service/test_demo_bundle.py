"""The committed demo bundle is what its script builds, byte for byte, and serves without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from service.demo import COMMITTED, build_committed, ensure_demo_bundle


def test_the_script_rebuilds_the_committed_demo_bundle_identically(tmp_path: Path) -> None:
    build_committed(tmp_path / "demo")
    files = sorted(p.name for p in COMMITTED.iterdir())
    assert files == sorted(p.name for p in (tmp_path / "demo").iterdir())
    for name in files:
        assert (tmp_path / "demo" / name).read_bytes() == (COMMITTED / name).read_bytes(), name


def test_serving_the_demo_imports_no_torch_pandas_or_sklearn(tmp_path: Path) -> None:
    made = ensure_demo_bundle(tmp_path / "models")
    assert (
        made is not None
        and (made / "manifest.json").read_bytes() == (COMMITTED / "manifest.json").read_bytes()
    )
    code = (
        "import sys; import tad.cli; from service.app import create_app; "
        "from service.settings import load_settings; "
        f"create_app(load_settings(model_dir={str(tmp_path / 'models')!r})); "
        "heavy = [m for m in ('torch', 'pandas', 'sklearn', 'matplotlib') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
