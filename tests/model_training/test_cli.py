"""`tad train` and `tad evaluate` as a user runs them, on a tiny SMD-layout dataset."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from tad.cli import app
from tests.conftest import synthetic_series


def write_smd(root: Path) -> None:
    for sub in ("train", "test", "test_label"):
        (root / sub).mkdir(parents=True)
    train, test = synthetic_series(1200), synthetic_series(600, seed=4)
    labels = np.zeros(600, int)
    test[400:430, :3] += 3.0
    labels[400:430] = 1
    for sub, arr, fmt in (
        ("train", train, "%.6f"),
        ("test", test, "%.6f"),
        ("test_label", labels, "%d"),
    ):
        with gzip.open(root / sub / "machine-9-9.txt.gz", "wt") as f:
            np.savetxt(f, arr, fmt=fmt, delimiter=",")


def test_train_then_evaluate(tmp_path: Path) -> None:
    write_smd(tmp_path / "SMD")
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(tmp_path / "SMD"),
            "--kind",
            "smd",
            "--out",
            str(tmp_path / "m"),
            "--epochs",
            "2",
            "--d-model",
            "16",
            "--expansion",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "m" / "machine-9-9" / "manifest.json").read_text())
    assert manifest["name"] == "machine-9-9" and manifest["training"]["epochs"] == 2
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--data",
            str(tmp_path / "SMD"),
            "--kind",
            "smd",
            "--bundles",
            str(tmp_path / "m"),
            "--out",
            str(tmp_path / "eval"),
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["entities"][0]["entity"] == "machine-9-9"
    assert "oracle" in (tmp_path / "eval" / "report.md").read_text()
    assert (tmp_path / "eval" / "machine-9-9.png").stat().st_size > 10_000


def test_unknown_kind_is_a_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["train", "--data", str(tmp_path), "--kind", "xyz", "--out", str(tmp_path / "m")]
    )
    assert res.exit_code != 0 and "--kind" in res.output
