"""SMAP/MSL loader on a hand-made telemanom layout, including malformed label tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_training.data import DatasetFormatError, load_nasa

HEADER = "chan_id,spacecraft,anomaly_sequences,class,num_values\n"


def _layout(root: Path, rows: str, test_len: int = 10, width: int = 3) -> Path:
    (root / "train").mkdir(parents=True, exist_ok=True)
    (root / "test").mkdir(parents=True, exist_ok=True)
    for chan in ("P-1", "P-10", "P-2", "M-1"):
        np.save(root / "train" / f"{chan}.npy", np.ones((6, width), dtype=np.float64))
        np.save(root / "test" / f"{chan}.npy", np.arange(test_len * width).reshape(test_len, width))
    (root / "labeled_anomalies.csv").write_text(HEADER + rows, encoding="utf-8")
    return root


GOOD = (
    'P-10,SMAP,"[[1, 3]]","[point]",10\n'
    'P-1,SMAP,"[[0, 2], [8, 10]]","[contextual, point]",10\n'
    "P-2,SMAP,[],[],10\n"
    'M-1,MSL,"[[5, 6]]","[point]",10\n'
)


def test_loads_spacecraft_in_natural_order(tmp_path: Path) -> None:
    entities = load_nasa(_layout(tmp_path, GOOD), "SMAP")
    assert [e.name for e in entities] == ["P-1", "P-2", "P-10"]
    first = entities[0]
    assert first.train.dtype == np.float32 and first.train.shape == (6, 3)
    assert first.test is not None and first.test.dtype == np.float32
    assert first.channel_names == ("ch00", "ch01", "ch02")
    assert first.test_labels is not None
    assert first.test_labels.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 1, 1]  # end-exclusive
    assert entities[1].test_labels is not None and not entities[1].test_labels.any()


def test_msl_and_channel_subset(tmp_path: Path) -> None:
    root = _layout(tmp_path, GOOD)
    (msl,) = load_nasa(root, "MSL")
    assert msl.name == "M-1" and msl.test_labels is not None
    assert np.flatnonzero(msl.test_labels).tolist() == [5]
    assert [e.name for e in load_nasa(root, "SMAP", channels=["P-2"])] == ["P-2"]


def test_channel_of_other_spacecraft_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"labeled_anomalies\.csv: no SMAP row .*M-1"):
        load_nasa(_layout(tmp_path, GOOD), "SMAP", channels=["M-1"])


def test_num_values_must_match_test_length(tmp_path: Path) -> None:
    root = _layout(tmp_path, 'P-1,SMAP,"[[0, 2]]",[],11\n')
    with pytest.raises(DatasetFormatError, match=r"P-1\.npy: 10 rows .*num_values=11"):
        load_nasa(root, "SMAP")


def test_segment_past_end(tmp_path: Path) -> None:
    root = _layout(tmp_path, 'P-1,SMAP,"[[5, 11]]",[],10\n')
    with pytest.raises(DatasetFormatError, match=r"P-1: segment \[5, 11\) runs past"):
        load_nasa(root, "SMAP")


@pytest.mark.parametrize(
    "sequences",
    ['"[[3, 1]]"', '"[[1, 2, 3]]"', '"[[1.5, 2]]"', "oops", "\"__import__('os')\"", '"{1: 2}"'],
)
def test_bad_sequences_name_line_and_column(tmp_path: Path, sequences: str) -> None:
    root = _layout(tmp_path, f"P-2,SMAP,[],[],10\nP-1,SMAP,{sequences},[],10\n")
    with pytest.raises(DatasetFormatError, match=r"line 3: column anomaly_sequences"):
        load_nasa(root, "SMAP")


def test_python_literal_sequences_accepted(tmp_path: Path) -> None:
    (entity,) = load_nasa(_layout(tmp_path, 'P-1,SMAP,"((0, 1),)",[],10\n'), "SMAP")
    assert entity.test_labels is not None and entity.test_labels.tolist()[:2] == [1, 0]


def test_missing_label_column(tmp_path: Path) -> None:
    root = _layout(tmp_path, "")
    (root / "labeled_anomalies.csv").write_text("chan_id,spacecraft\nP-1,SMAP\n")
    with pytest.raises(DatasetFormatError, match="missing column.*anomaly_sequences"):
        load_nasa(root, "SMAP")


def test_bad_num_values(tmp_path: Path) -> None:
    root = _layout(tmp_path, "P-1,SMAP,[],[],ten\n")
    with pytest.raises(DatasetFormatError, match="line 2: column num_values"):
        load_nasa(root, "SMAP")


def test_duplicate_channel_keeps_the_first_row_with_a_warning(tmp_path: Path) -> None:
    # as in the published SMAP label file, which lists P-2 twice
    root = _layout(tmp_path, GOOD + 'P-2,SMAP,"[[1, 2]]","[point]",10\n')
    with pytest.warns(UserWarning, match=r"line \d+: channel 'P-2' listed again.*first row"):
        entities = load_nasa(root, "SMAP", ["P-2"])
    first = load_nasa(_layout(tmp_path / "plain", GOOD), "SMAP", ["P-2"])[0]
    assert entities[0].test_labels is not None and first.test_labels is not None
    assert entities[0].test_labels.tolist() == first.test_labels.tolist()


def test_missing_label_file_and_npy(tmp_path: Path) -> None:
    root = _layout(tmp_path, GOOD)
    (root / "test" / "P-2.npy").unlink()
    with pytest.raises(DatasetFormatError, match=r"test/P-2\.npy: file not found"):
        load_nasa(root, "SMAP")
    (root / "labeled_anomalies.csv").unlink()
    with pytest.raises(DatasetFormatError, match=r"labeled_anomalies\.csv: file not found"):
        load_nasa(root, "SMAP")


def test_pickled_npy_refused(tmp_path: Path) -> None:
    root = _layout(tmp_path, "P-1,SMAP,[],[],10\n")
    np.save(root / "train" / "P-1.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetFormatError, match=r"train/P-1\.npy: not a readable"):
        load_nasa(root, "SMAP")


def test_width_mismatch_and_nan(tmp_path: Path) -> None:
    root = _layout(tmp_path, "P-1,SMAP,[],[],10\n")
    np.save(root / "test" / "P-1.npy", np.zeros((10, 2)))
    with pytest.raises(DatasetFormatError, match=r"test/P-1\.npy: 2 columns"):
        load_nasa(root, "SMAP")
    bad = np.zeros((10, 3))
    bad[4, 1] = np.nan
    np.save(root / "test" / "P-1.npy", bad)
    with pytest.raises(DatasetFormatError, match=r"test/P-1\.npy: row 4: non-finite"):
        load_nasa(root, "SMAP")
