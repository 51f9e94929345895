"""Loader for a user's own table: one CSV (optionally gzipped) or Parquet file per entity.

This is the entry point for data that follows no benchmark layout, so it validates more than the
benchmark loaders do and every error names the file, the column and (for CSV) the line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from detector.columns import AUTO, LABEL_COLUMNS, TIME_COLUMNS, pick
from model_training.data.entity import DatasetFormatError, Entity
from model_training.data.files import binary_labels, row_ref
from model_training.data.timestamps import require_monotonic, to_unix_seconds

_CSV_ENDINGS = (".csv", ".csv.gz", ".txt", ".txt.gz")
_PARQUET_ENDINGS = (".parquet", ".pq")


def load_table(
    path: Path,
    timestamp_column: str | None = AUTO,
    label_column: str | None = AUTO,
    channels: Sequence[str] | None = None,
    train_path: Path | None = None,
    train_fraction: float | None = None,
    drop_channels: Sequence[str] = (),
    train_until: str | float | None = None,
) -> Entity:
    """Load one table as an entity: the nominal (training) period and, with labels, the whole
    file as the labelled test.

    ``"auto"`` columns are the first of TIME_COLUMNS / LABEL_COLUMNS present (none: no
    timestamps / no labels); ``None`` means none. Channels default to every numeric column other
    than the timestamp and label columns, less ``drop_channels`` (a text column that is mostly
    numbers counts as numeric, so a stray bad cell is reported rather than the column silently
    dropped). The nominal period, in order of precedence:

    * ``train_path`` — that file (all of ``path`` is the test);
    * ``train_until`` — rows before that time (ISO 8601 or unix seconds);
    * ``train_fraction`` — the first ``floor(fraction · T)`` rows, which must be label 0;
    * otherwise the whole file without labels, or with labels the rows before the first
      labelled anomaly.

    Labelled-anomalous rows are never trained on (they are dropped from the nominal period).
    Timestamps (ISO 8601 text, datetimes or unix seconds; naive = UTC) must never decrease.
    """
    path = Path(path)
    frame = _read_frame(path)
    offset = _line_offset(path)
    timestamp_column = pick(list(frame.columns), timestamp_column, TIME_COLUMNS)
    label_column = pick(list(frame.columns), label_column, LABEL_COLUMNS)
    _require_columns(path, frame, [c for c in (timestamp_column, label_column) if c is not None])
    if channels is None:
        skip = {timestamp_column, label_column, *drop_channels}
        _require_columns(path, frame, list(drop_channels))
        names = [str(c) for c in frame.columns if c not in skip and _looks_numeric(frame[c])]
        if not names:
            raise DatasetFormatError(f"{path}: no numeric channel columns found")
    else:
        names = [c for c in channels if c not in set(drop_channels)]
        _require_columns(path, frame, names)
    values = _channel_matrix(path, frame, names)
    seconds = None
    if timestamp_column is not None:
        source = f"{path}: column {timestamp_column!r}"
        seconds = to_unix_seconds(frame[timestamp_column], source, offset)
        require_monotonic(seconds, source, offset)
    labels = None
    if label_column is not None:
        labels = _labels(path, frame, label_column)
    nominal = np.ones(len(values), bool) if labels is None else labels == 0
    if train_path is not None:
        train = _load_train_file(Path(train_path), names, timestamp_column, label_column)
        test_start = 0
    elif train_until is not None:
        if seconds is None:
            raise DatasetFormatError(f"{path}: train_until needs a timestamp column")
        cut = _time_value(train_until)
        n_train = int(np.searchsorted(seconds, cut, side="left"))
        if n_train < 1:
            raise DatasetFormatError(f"{path}: no row before train_until={train_until}")
        train, test_start = (
            values[:n_train][nominal[:n_train]],
            0 if labels is not None else n_train,
        )
    elif train_fraction is not None:
        test_start = _split_point(path, len(values), train_fraction, labels, label_column)
        train = values[:test_start]
    elif labels is None:
        train, test_start = values, len(values)
    else:
        first = int(np.argmax(labels)) if labels.any() else len(values)
        if first < 2 and labels.any():
            raise DatasetFormatError(
                f"{path}: column {label_column!r}: the first labelled anomaly is at "
                f"{row_ref(first, offset)}, leaving no nominal period; pass train_until or "
                "train_path"
            )
        train, test_start = values[:first], 0
    test = values[test_start:] if test_start < len(values) else None
    return Entity(
        name=_entity_name(path),
        train=train.astype(np.float32),
        test=None if test is None else test.astype(np.float32),
        test_labels=None if labels is None or test is None else labels[test_start:],
        channel_names=tuple(names),
        test_timestamps=None if seconds is None or test is None else seconds[test_start:],
    )


def _time_value(value: str | float) -> float:
    """Unix seconds of an ISO 8601 time or a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    t = pd.Timestamp(str(value))
    t = t.tz_localize("UTC") if t.tzinfo is None else t
    return float(t.timestamp())


def _load_train_file(
    path: Path, names: list[str], timestamp_column: str | None, label_column: str | None
) -> np.ndarray:
    """Read the nominal training file; its labels, if it has that column, must all be 0."""
    frame = _read_frame(path)
    _require_columns(path, frame, names)
    if timestamp_column is not None and timestamp_column in frame.columns:
        source = f"{path}: column {timestamp_column!r}"
        seconds = to_unix_seconds(frame[timestamp_column], source, _line_offset(path))
        require_monotonic(seconds, source, _line_offset(path))
    if label_column is not None and label_column in frame.columns:
        labels = _labels(path, frame, label_column)
        if labels.any():
            row = int(np.flatnonzero(labels)[0])
            raise DatasetFormatError(
                f"{path}: column {label_column!r}: {row_ref(row, _line_offset(path))}: "
                "training data must be nominal (label 0)"
            )
    return _channel_matrix(path, frame, names)


def _split_point(
    path: Path, n_rows: int, fraction: float, labels: np.ndarray | None, label_column: str | None
) -> int:
    """Rows before the returned index train; labelled rows there would poison training."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {fraction}")
    n_train = math.floor(fraction * n_rows)
    if n_train < 1 or n_train >= n_rows:
        raise DatasetFormatError(
            f"{path}: {n_rows} rows leave no train or no test part at train_fraction={fraction}"
        )
    if labels is not None and labels[:n_train].any():
        row = int(np.flatnonzero(labels[:n_train])[0])
        raise DatasetFormatError(
            f"{path}: column {label_column!r}: {row_ref(row, _line_offset(path))} is labelled "
            f"anomalous but lies in the training part (first {n_train} rows); pass train_path "
            "or a smaller train_fraction"
        )
    return n_train


def _read_frame(path: Path) -> pd.DataFrame:
    lower = path.name.lower()
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found")
    try:
        if lower.endswith(_PARQUET_ENDINGS):
            frame = pd.read_parquet(path)
        elif lower.endswith(_CSV_ENDINGS):
            frame = pd.read_csv(path)
        else:
            raise DatasetFormatError(
                f"{path}: unsupported file type (expected {', '.join(_CSV_ENDINGS)}, "
                f"{', '.join(_PARQUET_ENDINGS)})"
            )
    except DatasetFormatError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError, ValueError) as exc:
        raise DatasetFormatError(f"{path}: cannot parse: {exc}") from exc
    if frame.empty:
        raise DatasetFormatError(f"{path}: no data rows")
    return frame


def _require_columns(path: Path, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DatasetFormatError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
            f"found {', '.join(map(repr, map(str, frame.columns)))}"
        )


def _looks_numeric(series: pd.Series) -> bool:
    """Numeric dtype, or text where most non-empty cells parse as numbers."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return False
    if pd.api.types.is_numeric_dtype(series):
        return True
    present = series.dropna()
    parsed = pd.to_numeric(present, errors="coerce").notna().sum()
    return len(present) > 0 and parsed * 2 > len(present)


def _channel_matrix(path: Path, frame: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Stack channel columns as float64, naming the first missing or non-numeric cell."""
    offset = _line_offset(path)
    columns = []
    for name in names:
        series = frame[name]
        if pd.api.types.is_datetime64_any_dtype(series):
            raise DatasetFormatError(f"{path}: column {name!r}: datetimes are not a channel")
        numeric = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(numeric))
        if bad.size:
            row = int(bad[0])
            cell = series.iloc[row]
            what = "missing value" if pd.isna(cell) else f"not a finite number: {cell!r}"
            raise DatasetFormatError(f"{path}: column {name!r}: {row_ref(row, offset)}: {what}")
        columns.append(numeric)
    return np.stack(columns, axis=1)


def _labels(path: Path, frame: pd.DataFrame, column: str) -> np.ndarray:
    series = frame[column]
    numeric = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isin(numeric, (0, 1)))
    if bad.size:
        row = int(bad[0])
        raise DatasetFormatError(
            f"{path}: column {column!r}: {row_ref(row, _line_offset(path))}: "
            f"label {series.iloc[row]!r} is not 0 or 1 ({bad.size} bad label(s) in total)"
        )
    return binary_labels(numeric, f"{path}: column {column!r}")


def _line_offset(path: Path) -> int | None:
    """CSV rows map to lines (header is line 1); Parquet rows have no line, so report the row."""
    return None if path.name.lower().endswith(_PARQUET_ENDINGS) else 2


def _entity_name(path: Path) -> str:
    name = path.name.removesuffix(".gz").removesuffix(".GZ")
    return name.rsplit(".", 1)[0] if "." in name else name
