"""Generic table loader: CSV, gzipped CSV and Parquet, with every malformed case named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model_training.data import DatasetFormatError, load_table
from tests.model_training.data.helpers import write_text


def _frame(n: int = 10) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="1min").strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "cpu": np.linspace(0, 1, n),
            "host": ["web-1"] * n,
            "mem": np.arange(n, dtype=np.int64),
            "label": [0] * (n - 2) + [1, 1],
        }
    )


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    write_text(path, frame.to_csv(index=False))
    return path


@pytest.mark.parametrize("name", ["m.csv", "m.csv.gz", "m.parquet"])
def test_loads_csv_gz_and_parquet(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame = _frame()
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
        frame.to_parquet(path)
    else:
        _csv(path, _frame())
    entity = load_table(path)  # "timestamp" and "label" found by name
    assert entity.name == "m"
    assert entity.channel_names == ("cpu", "mem")  # text column "host" is not a channel
    # the nominal period: rows before the first labelled anomaly; the test: the whole file
    assert entity.train.shape == (8, 2) and entity.train.dtype == np.float32
    assert entity.test is not None and entity.test.shape == (10, 2)
    assert entity.test_labels is not None and entity.test_labels.tolist()[-3:] == [0, 1, 1]
    assert entity.test_timestamps is not None
    first = pd.Timestamp("2024-01-01T00:00:00Z").timestamp()
    assert entity.test_timestamps[0] == first


def test_explicit_channels_no_timestamp_no_label(tmp_path: Path) -> None:
    path = _csv(tmp_path / "m.csv", _frame())
    entity = load_table(
        path, timestamp_column=None, label_column=None, channels=["mem"], train_fraction=0.5
    )
    assert entity.channel_names == ("mem",)
    assert entity.train[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert entity.test_labels is None and entity.test_timestamps is None


def test_numeric_unix_timestamps(tmp_path: Path) -> None:
    path = _csv(tmp_path / "m.csv", pd.DataFrame({"ts": [10.0, 20.0, 30.0, 40.0, 50.0], "x": 1}))
    entity = load_table(path, timestamp_column="ts")
    assert entity.train.shape == (5, 1) and entity.test is None  # no labels: all of it trains
    entity = load_table(path, timestamp_column="ts", train_until="35")
    assert entity.train.shape == (3, 1)
    assert entity.test_timestamps is not None and entity.test_timestamps.tolist() == [40.0, 50.0]


def test_label_column_is_never_a_channel_and_anomalies_never_train(tmp_path: Path) -> None:
    frame = _frame(10).rename(columns={"timestamp": "time"})
    frame.loc[3, "label"] = 1  # an anomaly inside the training period
    path = _csv(tmp_path / "m.csv", frame)
    entity = load_table(path, train_until="2024-01-01T00:06:00Z", drop_channels=["mem"])
    assert entity.channel_names == ("cpu",)  # no label, no dropped channel
    assert entity.train.shape == (5, 1)  # rows 0-5 less the labelled row 3
    assert 3 / 9 not in entity.train[:, 0].round(6).tolist()
    assert entity.test is not None and len(entity.test) == 10


def test_train_path(tmp_path: Path) -> None:
    train = _frame(6)
    train["label"] = 0
    train_path = _csv(tmp_path / "train.csv", train)
    path = _csv(tmp_path / "m.csv", _frame())
    entity = load_table(path, label_column="label", train_path=train_path)
    assert entity.train.shape == (6, 2)
    assert entity.test is not None and entity.test.shape == (10, 2)
    assert entity.test_labels is not None and entity.test_labels.sum() == 2


def test_train_path_must_be_nominal(tmp_path: Path) -> None:
    train_path = _csv(tmp_path / "train.csv", _frame(6))
    path = _csv(tmp_path / "m.csv", _frame())
    with pytest.raises(DatasetFormatError, match=r"train\.csv: column 'label': line 6"):
        load_table(path, label_column="label", train_path=train_path)


def test_train_path_missing_channel(tmp_path: Path) -> None:
    train_path = _csv(tmp_path / "train.csv", _frame(6).drop(columns="mem"))
    path = _csv(tmp_path / "m.csv", _frame())
    with pytest.raises(DatasetFormatError, match=r"train\.csv: missing column\(s\) 'mem'"):
        load_table(path, train_path=train_path)


def test_labelled_row_in_training_part(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[1, "label"] = 1
    path = _csv(tmp_path / "m.csv", frame)
    with pytest.raises(DatasetFormatError, match=r"m\.csv: column 'label': line 3 .*training"):
        load_table(path, label_column="label", train_fraction=0.2)
    with pytest.raises(DatasetFormatError, match=r"line 3, leaving no nominal period"):
        load_table(path)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"timestamp_column": "time"}, r"m\.csv: missing column\(s\) 'time'"),
        ({"label_column": "y"}, r"m\.csv: missing column\(s\) 'y'"),
        ({"channels": ["cpu", "disk"]}, r"m\.csv: missing column\(s\) 'disk'"),
        ({"channels": ["host"]}, r"m\.csv: column 'host': line 2: not a finite number: 'web-1'"),
    ],
)
def test_column_errors(tmp_path: Path, kwargs: dict[str, object], pattern: str) -> None:
    path = _csv(tmp_path / "m.csv", _frame())
    with pytest.raises(DatasetFormatError, match=pattern):
        load_table(path, **kwargs)  # type: ignore[arg-type]


def test_stray_text_in_numeric_column(tmp_path: Path) -> None:
    frame = _frame().astype({"cpu": object})
    frame.loc[4, "cpu"] = "n/a?"
    path = _csv(tmp_path / "m.csv", frame)
    with pytest.raises(DatasetFormatError, match=r"column 'cpu': line 6: not a finite number"):
        load_table(path)


def test_missing_value(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[3, "mem"] = None
    path = _csv(tmp_path / "m.csv", frame)
    with pytest.raises(DatasetFormatError, match=r"column 'mem': line 5: missing value"):
        load_table(path)


def test_non_monotonic_timestamps(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[7, "timestamp"] = "2023-12-31T00:00:00Z"
    path = _csv(tmp_path / "m.csv", frame)
    with pytest.raises(DatasetFormatError, match=r"column 'timestamp': line 9: .*not monotonic"):
        load_table(path)


def test_unparseable_timestamp(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[2, "timestamp"] = "tuesday"
    path = _csv(tmp_path / "m.csv", frame)
    with pytest.raises(DatasetFormatError, match=r"column 'timestamp': line 4: cannot read"):
        load_table(path)


@pytest.mark.parametrize("bad", [2, -1, "yes", None])
def test_labels_outside_binary(tmp_path: Path, bad: object) -> None:
    frame = _frame().astype({"label": object})
    frame.loc[8, "label"] = bad
    path = _csv(tmp_path / "m.csv", frame)
    with pytest.raises(DatasetFormatError, match=r"m\.csv: column 'label': line 10: label"):
        load_table(path, label_column="label")


def test_parquet_errors_name_row(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[3, "label"] = 5
    frame.to_parquet(tmp_path / "m.parquet")
    with pytest.raises(DatasetFormatError, match=r"m\.parquet: column 'label': row 3"):
        load_table(tmp_path / "m.parquet", label_column="label")


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"nope\.csv: file not found"):
        load_table(tmp_path / "nope.csv")
    (tmp_path / "m.xlsx").write_bytes(b"x")
    with pytest.raises(DatasetFormatError, match=r"m\.xlsx: unsupported file type"):
        load_table(tmp_path / "m.xlsx")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DatasetFormatError, match=r"bad\.parquet: cannot parse"):
        load_table(tmp_path / "bad.parquet")
    write_text(tmp_path / "empty.csv", "timestamp,x\n")
    with pytest.raises(DatasetFormatError, match=r"empty\.csv: no data rows"):
        load_table(tmp_path / "empty.csv")
    write_text(tmp_path / "text.csv", "timestamp,host\n2024-01-01,a\n2024-01-02,b\n")
    with pytest.raises(DatasetFormatError, match=r"text\.csv: no numeric channel"):
        load_table(tmp_path / "text.csv")


def test_split_errors(tmp_path: Path) -> None:
    path = _csv(tmp_path / "m.csv", _frame(3))
    with pytest.raises(DatasetFormatError, match=r"m\.csv: 3 rows leave no train"):
        load_table(path, train_fraction=0.2)
    with pytest.raises(ValueError, match="train_fraction"):
        load_table(path, train_fraction=0.0)
