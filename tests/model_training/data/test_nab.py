"""NAB loader on a hand-made corpus: split, inclusive windows, timestamps, malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model_training.data import DatasetFormatError, load_nab
from tests.model_training.data.helpers import write_text


def _series(n: int, start: str = "2014-04-01 00:00:00") -> str:
    stamps = pd.date_range(start, periods=n, freq="5min")
    rows = "".join(f"{t:%Y-%m-%d %H:%M:%S},{i * 1.5}\n" for i, t in enumerate(stamps))
    return "timestamp,value\n" + rows


def _windows(root: Path, windows: dict[str, list[list[str]]]) -> None:
    write_text(root / "labels" / "combined_windows.json", json.dumps(windows))


@pytest.fixture
def nab_root(tmp_path: Path) -> Path:
    write_text(tmp_path / "data" / "realTraffic" / "speed_10.csv.gz", _series(20))
    write_text(tmp_path / "data" / "realTraffic" / "speed_9.csv", _series(20))
    write_text(tmp_path / "data" / "artificialNoAnomaly" / "flat.csv", _series(40))
    _windows(
        tmp_path,
        {
            "realTraffic/speed_9.csv": [["2014-04-01 00:50:00.000000", "2014-04-01 01:00:00"]],
            "realTraffic/speed_10.csv": [],
            "artificialNoAnomaly/flat.csv": [],
        },
    )
    return tmp_path


def test_loads_all_series(nab_root: Path) -> None:
    entities = load_nab(nab_root)
    names = [e.name for e in entities]
    assert names == ["artificialNoAnomaly/flat", "realTraffic/speed_9", "realTraffic/speed_10"]
    flat, speed9, _ = entities
    assert flat.train.shape == (6, 1) and flat.test is not None and flat.test.shape == (34, 1)
    assert flat.channel_names == ("value",) and flat.train.dtype == np.float32
    assert speed9.train.shape == (3, 1)  # floor(0.15 * 20)
    assert speed9.test_labels is not None and speed9.test_timestamps is not None
    # rows 10, 11, 12 (00:50, 00:55, 01:00) are inside the inclusive window; test starts at row 3
    assert np.flatnonzero(speed9.test_labels).tolist() == [7, 8, 9]
    start = pd.Timestamp("2014-04-01 00:15:00", tz="UTC").timestamp()
    assert speed9.test_timestamps[0] == start
    assert speed9.test_timestamps.dtype == np.float64
    assert np.all(np.diff(speed9.test_timestamps) == 300.0)


def test_names_fraction_and_cap(nab_root: Path) -> None:
    (entity,) = load_nab(nab_root, names=["artificialNoAnomaly/flat.csv"], train_fraction=0.5)
    assert len(entity.train) == 20
    (capped,) = load_nab(nab_root, names=["artificialNoAnomaly/flat"], max_train_rows=4)
    assert len(capped.train) == 4


def test_bad_fraction(nab_root: Path) -> None:
    with pytest.raises(ValueError, match="train_fraction"):
        load_nab(nab_root, train_fraction=1.0)
    with pytest.raises(DatasetFormatError, match=r"speed_9\.csv: 20 rows leave no train"):
        load_nab(nab_root, names=["realTraffic/speed_9"], train_fraction=0.01)


def test_missing_label_entry(nab_root: Path) -> None:
    write_text(nab_root / "data" / "realTraffic" / "extra.csv", _series(10))
    with pytest.raises(DatasetFormatError, match=r"combined_windows\.json: no entry .*extra\.csv"):
        load_nab(nab_root)


def test_missing_series_file(nab_root: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"realTraffic/nope\.csv: file not found"):
        load_nab(nab_root, names=["realTraffic/nope"])


def test_missing_folders_and_labels(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="folder not found"):
        load_nab(tmp_path)
    (tmp_path / "data").mkdir()
    with pytest.raises(DatasetFormatError, match=r"combined_windows\.json: file not found"):
        load_nab(tmp_path)


def test_bad_value_names_line(nab_root: Path) -> None:
    text = _series(20).replace(",4.5\n", ",four\n")
    write_text(nab_root / "data" / "realTraffic" / "speed_9.csv", text)
    with pytest.raises(DatasetFormatError, match=r"speed_9\.csv: line 5, column value"):
        load_nab(nab_root)


def test_bad_timestamp_names_line(nab_root: Path) -> None:
    text = _series(20).replace("2014-04-01 00:10:00", "yesterday")
    write_text(nab_root / "data" / "realTraffic" / "speed_10.csv.gz", text)
    with pytest.raises(DatasetFormatError, match=r"speed_10\.csv\.gz: column timestamp: line 4"):
        load_nab(nab_root)


def test_missing_column(nab_root: Path) -> None:
    write_text(nab_root / "data" / "realTraffic" / "speed_9.csv", "time,value\n1,2\n")
    with pytest.raises(DatasetFormatError, match=r"speed_9\.csv: missing column 'timestamp'"):
        load_nab(nab_root)


@pytest.mark.parametrize(
    "windows",
    [
        "[1, 2]",
        '{"realTraffic/speed_9.csv": [["2014-04-01"]]}',
        '{"realTraffic/speed_9.csv": [["2014-04-02", "2014-04-01"]]}',
        '{"realTraffic/speed_9.csv": [["soon", "later"]]}',
        "{not json",
    ],
)
def test_bad_windows_file(nab_root: Path, windows: str) -> None:
    write_text(nab_root / "labels" / "combined_windows.json", windows)
    with pytest.raises(DatasetFormatError, match=r"combined_windows\.json"):
        load_nab(nab_root, names=["realTraffic/speed_9"])


def test_time_going_back_is_kept_in_file_order(nab_root: Path) -> None:
    """The real machine_temperature file steps back an hour; NAB scores rows in file order."""
    text = _series(20).replace("2014-04-01 01:00:00", "2014-04-01 00:00:00")
    write_text(nab_root / "data" / "realTraffic" / "speed_9.csv", text)
    (entity,) = load_nab(nab_root, names=["realTraffic/speed_9"])
    assert entity.test_timestamps is not None and len(entity.test_timestamps) == 17
