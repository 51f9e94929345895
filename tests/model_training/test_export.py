"""Bundles: ONNX Runtime matches torch, and broken or edited bundles are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from detector.bundle import load_bundle  # noqa: E402
from detector.errors import BundleError  # noqa: E402
from detector.runtime import OnnxReconstructor  # noqa: E402
from model_training.export import ExportError, check_parity, onnx_bytes  # noqa: E402
from model_training.model import CCMTAD, ModelConfig  # noqa: E402


def test_onnx_runtime_matches_torch(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    manifest = bundle.manifest
    assert manifest["onnx"]["parity_max_abs_diff"] <= 1e-5
    assert manifest["schema_version"] == 1 and len(manifest["channel_clusters"]) == 9
    for key in ("alpha", "threshold", "delta", "epsilon"):
        assert key in manifest["alarm"]
    rt = OnnxReconstructor.from_bundle(bundle, "cpu")
    windows = np.random.default_rng(0).uniform(-1, 1, (300, 24, 9)).astype(np.float32)
    assert rt.reconstruct(windows).shape == (300, 9)  # dynamic batch


def test_export_refuses_a_graph_that_disagrees() -> None:
    model = CCMTAD(ModelConfig(n_channels=3, clusters=[0, 0, 1], d_model=8, expansion=1)).eval()
    blob = onnx_bytes(model)
    windows = np.random.default_rng(1).uniform(-1, 1, (16, 24, 3)).astype(np.float32)
    assert check_parity(model, blob, windows) <= 1e-5
    with torch.no_grad():
        model.head.bias += 1e-3  # the torch model moves on; the exported graph does not
    with pytest.raises(ExportError):
        check_parity(model, blob, windows)


@pytest.mark.parametrize("damage", ["truncate_model", "edit_manifest", "drop_npz", "bad_json"])
def test_damaged_bundles_are_refused(tiny_bundle: Path, tmp_path: Path, damage: str) -> None:
    copy = tmp_path / "b"
    shutil.copytree(tiny_bundle, copy)
    if damage == "truncate_model":
        blob = (copy / "model.onnx").read_bytes()
        (copy / "model.onnx").write_bytes(blob[: len(blob) // 2])
    elif damage == "edit_manifest":
        m = json.loads((copy / "manifest.json").read_text())
        m["alarm"]["threshold"] = 0.0
        (copy / "manifest.json").write_text(json.dumps(m))
    elif damage == "drop_npz":
        (copy / "calibration.npz").unlink()
    else:
        (copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError):
        load_bundle(copy)
