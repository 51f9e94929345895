"""The committed demo bundle is what its script builds (up to float rounding) and serves
without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from service.demo import COMMITTED, build_committed, ensure_demo_bundle

RTOL, ATOL = 1e-4, 1e-6  # observed between two CPUs: ~1e-6 absolute


def _close(a: Any, b: Any, where: str) -> None:
    """JSON values equal, numbers to within float rounding; hashes (of bytes that differ in
    the last bits) are not compared."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            if "hash" not in k and "sha256" not in k and not where.endswith(".files"):
                _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert np.isclose(a, b, rtol=RTOL, atol=ATOL), (where, a, b)
    else:
        assert a == b, (where, a, b)


def test_the_script_rebuilds_the_committed_demo_bundle(tmp_path: Path) -> None:
    """Same files, same graphs, same numbers up to float rounding: training's last bits
    depend on the CPU's vector unit, so the rebuild is bit-identical only on the machine
    that built the committed copy."""
    import onnx
    from onnx import numpy_helper

    build_committed(tmp_path / "demo")
    new = tmp_path / "demo"
    files = sorted(p.name for p in COMMITTED.iterdir())
    assert files == sorted(p.name for p in new.iterdir())
    _close(
        json.loads((new / "manifest.json").read_text()),
        json.loads((COMMITTED / "manifest.json").read_text()),
        "manifest",
    )
    with (
        np.load(new / "calibration.npz", allow_pickle=False) as a,
        np.load(COMMITTED / "calibration.npz", allow_pickle=False) as b,
    ):
        assert sorted(a.files) == sorted(b.files)
        for k in b.files:
            np.testing.assert_allclose(a[k], b[k], rtol=RTOL, atol=ATOL, err_msg=k)
    for name in files:
        if not name.endswith(".onnx"):
            continue
        ga, gb = onnx.load(new / name).graph, onnx.load(COMMITTED / name).graph
        assert [n.op_type for n in ga.node] == [n.op_type for n in gb.node], name
        wa = {t.name: numpy_helper.to_array(t) for t in ga.initializer}
        wb = {t.name: numpy_helper.to_array(t) for t in gb.initializer}
        assert wa.keys() == wb.keys(), name
        for k in wb:
            np.testing.assert_allclose(  # 4 epochs of training amplify the rounding
                wa[k], wb[k], rtol=1e-2, atol=5e-3, err_msg=f"{name}:{k}"
            )


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
