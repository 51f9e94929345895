"""`tad train` and `tad evaluate` as a user runs them, on a tiny SMD-layout dataset."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from model_training.baselines import BASELINES
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


SERVING_ONLY = Path(__file__).parents[1] / "deploy" / "no_torch"  # blocks the train extra


def tad(*args: str, cwd: Path, serving: bool = False) -> subprocess.CompletedProcess[str]:
    """The installed `tad` command, as a user runs it (`serving`: as in the serving install,
    where torch, pandas, pyarrow, matplotlib, onnx and optuna cannot be imported)."""
    exe = Path(sys.executable).parent / "tad"
    env = dict(os.environ)
    if serving:
        root = str(Path(__file__).parents[2])
        env["PYTHONPATH"] = os.pathsep.join([str(SERVING_ONLY), root])
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )


def test_table_train_then_evaluate_a_labelled_file(tmp_path: Path) -> None:
    import pandas as pd

    x = synthetic_series(2000, seed=2)
    labels = np.zeros(2000, int)
    x[1700:1740, :3] += 3.0
    labels[1700:1740] = 1
    frame = pd.DataFrame(x, columns=[f"c{i}" for i in range(9)])
    frame.insert(0, "time", pd.date_range("2026-01-01", periods=2000, freq="1s", tz="UTC"))
    frame["label"] = labels
    frame.to_csv(tmp_path / "plant.csv", index=False)
    common = ("--kind", "table", "--data", "plant.csv", "--drop-channels", "c8")
    done = tad("train", *common, "--out", "models", "--epochs", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "models" / "plant" / "manifest.json").read_text())
    assert manifest["channel_names"] == [f"c{i}" for i in range(8)]  # no label, no c8
    assert manifest["training"]["n_validation"] == 340  # 1,700 rows before the first anomaly
    # the bundle keeps its channel choice: evaluate without --drop-channels reads its channels
    plain = ("--kind", "table", "--data", "plant.csv")
    done = tad("evaluate", *plain, "--bundles", "models", "--out", "eval", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ignored column(s) the bundle does not use: c8" in done.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["entities"][0]["segments_detected"] == 1
    assert set(report["methods"]) == {"ccm-tad", *BASELINES}
    assert set(BASELINES) >= {"pca", "mean_distance", "z_mean", "z_max"}


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("time,a,b\n2026-01-01T00:00:00Z,1,2\n")
    cases = [
        (("train", "--kind", "table", "--data", "nope.csv", "--out", "m"), "nope.csv"),
        (("train", "--kind", "tabel", "--data", "t.csv", "--out", "m"), "--kind"),
        (
            ("train", "--kind", "table", "--data", "t.csv", "--out", "m", "--label-column", "y"),
            "'y'",
        ),
        (("train", "--kind", "table", "--data", "t.csv", "--out", "m"), "nominal rows"),
        (("train", "--bogus"), "--bogus"),
        (("evaluate", "--kind", "table", "--data", "t.csv", "--bundles", "m"), "no bundle"),
    ]
    for args, needle in cases:
        done = tad(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (
            args,
            done.stderr,
        )
    assert (Path(__file__).parents[2] / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.parametrize("install", ["full", "serving"])
def test_real_file_mistakes_are_one_line_and_exit_2(install: str, tmp_path: Path) -> None:
    """Issue 24's bad inputs: a `;` file read with the wrong separator, a time without a date,
    a bundle that is not there — one line naming the problem, exit 2, in both installs (the
    serving install says which extra `train` and `evaluate` need)."""
    rows = ["time;temp;flow;anomaly"] + [
        f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z;{i % 7},5;{i % 5},25;0" for i in range(300)
    ]
    (tmp_path / "semi.csv").write_text("\n".join(rows) + "\n")
    serving = install == "serving"
    extra = "pip install 'ccm-tad-service[train]'"
    train = ("train", "--kind", "table", "--data", "semi.csv", "--out", "m")
    cases = [
        (train + ("--sep", ","), extra if serving else "header reads as 1 column(s)"),
        (train + ("--train-until", "10:41:33"), extra if serving else "without a date"),
        (
            ("evaluate", "--kind", "table", "--data", "semi.csv", "--model", "nope"),
            "no bundle in models/nope",
        ),
        (
            ("replay", "--url", "ws://127.0.0.1:9", "--csv", "semi.csv", "--sep", ","),
            "header reads as 1 column(s)",
        ),
    ]
    for args, needle in cases:
        done = tad(*args, cwd=tmp_path, serving=serving)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (args, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)
        assert needle in lines[0], (args, lines[0])


def test_a_folder_of_runs_trains_one_bundle_each_without_name_clashes(tmp_path: Path) -> None:
    import pandas as pd

    for i, rig in enumerate(("rig_a", "rig_b")):
        (tmp_path / rig).mkdir()
        x = synthetic_series(600, seed=i)[:, :3]
        pd.DataFrame(x, columns=["a", "b", "c"]).to_csv(tmp_path / rig / "1.csv", index=False)
    done = tad(
        "train",
        "--kind",
        "table",
        "--data",
        "rig_*/1.csv",
        "--out",
        "models",
        "--epochs",
        "1",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert names == ["rig_a__1", "rig_b__1"]
    manifest = json.loads((tmp_path / "models" / "rig_b__1" / "manifest.json").read_text())
    assert manifest["name"] == "rig_b/1"
