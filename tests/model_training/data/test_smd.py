"""SMD loader on hand-made layouts, including gzipped files and malformed ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_training.data import DatasetFormatError, load_smd, smd_interpretation
from tests.model_training.data.helpers import write_text

TRAIN = "0.1,0.2,0.3\n0.4,0.5,0.6\n0.7,0.8,0.9\n"
TEST = "1,2,3\n4,5,6\n"
LABELS = "0\n1\n"


def _machine(root: Path, name: str, suffix: str = ".txt") -> None:
    write_text(root / "train" / f"{name}{suffix}", TRAIN)
    write_text(root / "test" / f"{name}{suffix}", TEST)
    write_text(root / "test_label" / f"{name}{suffix}", LABELS)


@pytest.fixture
def smd_root(tmp_path: Path) -> Path:
    _machine(tmp_path, "machine-1-10", ".txt.gz")
    _machine(tmp_path, "machine-1-2")
    _machine(tmp_path, "machine-2-1", ".txt.gz")
    return tmp_path


def test_loads_plain_and_gz_in_natural_order(smd_root: Path) -> None:
    entities = load_smd(smd_root)
    assert [e.name for e in entities] == ["machine-1-2", "machine-1-10", "machine-2-1"]
    for entity in entities:
        assert entity.train.dtype == np.float32 and entity.train.shape == (3, 3)
        assert entity.test is not None and entity.test.shape == (2, 3)
        assert entity.test_labels is not None and entity.test_labels.dtype == np.int8
        assert entity.test_labels.tolist() == [0, 1]
        assert entity.channel_names == ("ch00", "ch01", "ch02")
        assert entity.test_timestamps is None
    np.testing.assert_allclose(entities[1].train[1], [0.4, 0.5, 0.6])


def test_machine_subset(smd_root: Path) -> None:
    entities = load_smd(smd_root, machines=["machine-2-1"])
    assert [e.name for e in entities] == ["machine-2-1"]


def test_unknown_machine_names_file(smd_root: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"machine-9-9\.txt: file not found"):
        load_smd(smd_root, machines=["machine-9-9"])


def test_missing_folder(smd_root: Path) -> None:
    for sub in ("test_label", "test"):
        (smd_root / sub).rename(smd_root / f"{sub}_gone")
    with pytest.raises(DatasetFormatError, match=r"test: folder not found"):
        load_smd(smd_root)


def test_empty_train_folder(tmp_path: Path) -> None:
    for sub in ("train", "test", "test_label"):
        (tmp_path / sub).mkdir()
    with pytest.raises(DatasetFormatError, match="no"):
        load_smd(tmp_path)


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_ragged_row_names_file_and_line(tmp_path: Path, suffix: str) -> None:
    _machine(tmp_path, "machine-1-1", suffix)
    write_text(tmp_path / "train" / f"machine-1-1{suffix}", "1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(DatasetFormatError, match=r"machine-1-1\.txt.*line 2: expected 3"):
        load_smd(tmp_path)


def test_long_row_names_line(tmp_path: Path) -> None:
    _machine(tmp_path, "machine-1-1")
    write_text(tmp_path / "train" / "machine-1-1.txt", "1,2,3\n4,5,6\n6,7,8,9\n")
    with pytest.raises(DatasetFormatError, match=r"line 3: expected 3 .* found 4"):
        load_smd(tmp_path)


def test_text_value_names_line_and_column(tmp_path: Path) -> None:
    _machine(tmp_path, "machine-1-1")
    write_text(tmp_path / "test" / "machine-1-1.txt", "1,2,3\n4,abc,6\n")
    with pytest.raises(DatasetFormatError, match=r"test/machine-1-1\.txt: line 2, column 2"):
        load_smd(tmp_path)


def test_nan_value_rejected(tmp_path: Path) -> None:
    _machine(tmp_path, "machine-1-1")
    write_text(tmp_path / "test" / "machine-1-1.txt", "1,2,3\n4,nan,6\n")
    with pytest.raises(DatasetFormatError, match=r"line 2, column 2: non-finite"):
        load_smd(tmp_path)


def test_test_width_must_match_train(tmp_path: Path) -> None:
    _machine(tmp_path, "machine-1-1")
    write_text(tmp_path / "test" / "machine-1-1.txt", "1,2\n4,5\n")
    with pytest.raises(DatasetFormatError, match=r"test/machine-1-1\.txt: line 1: expected 3"):
        load_smd(tmp_path)


def test_label_length_mismatch(tmp_path: Path) -> None:
    _machine(tmp_path, "machine-1-1")
    write_text(tmp_path / "test_label" / "machine-1-1.txt", "0\n1\n0\n")
    with pytest.raises(
        DatasetFormatError, match=r"test_label/machine-1-1\.txt: 3 labels .* 2 rows"
    ):
        load_smd(tmp_path)


def test_label_not_binary(tmp_path: Path) -> None:
    _machine(tmp_path, "machine-1-1")
    write_text(tmp_path / "test_label" / "machine-1-1.txt", "0\n2\n")
    with pytest.raises(DatasetFormatError, match=r"test_label/machine-1-1\.txt: line 2: label"):
        load_smd(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    _machine(tmp_path, "machine-1-1")
    write_text(tmp_path / "train" / "machine-1-1.txt", "")
    with pytest.raises(DatasetFormatError, match=r"train/machine-1-1\.txt: file is empty"):
        load_smd(tmp_path)


def test_plain_and_gz_twins_rejected(tmp_path: Path) -> None:
    _machine(tmp_path, "machine-1-1")
    write_text(tmp_path / "train" / "machine-1-1.txt.gz", TRAIN)
    with pytest.raises(DatasetFormatError, match=r"machine-1-1\.txt"):
        load_smd(tmp_path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    _machine(tmp_path, "machine-1-1", ".txt.gz")
    (tmp_path / "test" / "machine-1-1.txt.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetFormatError, match=r"test/machine-1-1\.txt\.gz"):
        load_smd(tmp_path)


@pytest.mark.parametrize("suffix", [".txt", ".txt.gz"])
def test_interpretation(tmp_path: Path, suffix: str) -> None:
    write_text(
        tmp_path / "interpretation_label" / f"machine-1-1{suffix}",
        "15-18:1,3\n\n40-41:38\n",
    )
    segments = smd_interpretation(tmp_path, "machine-1-1")
    assert segments == [(15, 18, [0, 2]), (40, 41, [37])]


def test_interpretation_matches_labels_as_slices(tmp_path: Path) -> None:
    """The shipped test_label files equal labels[start:end] = 1 with the numbers as written."""
    write_text(tmp_path / "interpretation_label" / "m.txt", "2-4:1\n")
    labels = np.zeros(6, dtype=np.int8)
    for start, end, _ in smd_interpretation(tmp_path, "m"):
        labels[start:end] = 1
    assert labels.tolist() == [0, 0, 1, 1, 0, 0]


@pytest.mark.parametrize("line", ["15:1", "15-18", "a-b:1", "18-15:1", "15-18:0", "15-18:1;2"])
def test_bad_interpretation_line(tmp_path: Path, line: str) -> None:
    write_text(tmp_path / "interpretation_label" / "machine-1-1.txt", f"1-2:1\n{line}\n")
    with pytest.raises(DatasetFormatError, match=r"machine-1-1\.txt: line 2"):
        smd_interpretation(tmp_path, "machine-1-1")


def test_interpretation_missing_file(tmp_path: Path) -> None:
    (tmp_path / "interpretation_label").mkdir()
    with pytest.raises(DatasetFormatError, match="file not found"):
        smd_interpretation(tmp_path, "machine-1-1")
