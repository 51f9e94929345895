"""Loader for a user's own table: one CSV (optionally gzipped) or Parquet file per entity.

This is the entry point for data that follows no benchmark layout, so it validates more than the
benchmark loaders do and every error names the file, the column and (for CSV) the line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from detector.columns import (
    AUTO,
    TIME_COLUMNS,
    TableFormat,
    format_hint,
    label_columns,
    pick,
    read_head,
    sniff_format,
)
from model_training.data.entity import DatasetFormatError, Entity
from model_training.data.files import binary_labels, row_ref
from model_training.data.timestamps import require_monotonic, to_unix_seconds

_CSV_ENDINGS = (".csv", ".csv.gz", ".txt", ".txt.gz")
_PARQUET_ENDINGS = (".parquet", ".pq")


def load_table(
    path: Path,
    timestamp_column: str | None = AUTO,
    label_column: str | Sequence[str] | None = AUTO,
    channels: Sequence[str] | None = None,
    train_path: Path | None = None,
    train_fraction: float | None = None,
    drop_channels: Sequence[str] = (),
    train_until: str | float | None = None,
    sep: str | None = None,
    name: str | None = None,
    extra_columns: str = "error",
) -> Entity:
    """Load one table as an entity: the nominal (training) period and, with labels, the whole
    file as the labelled test.

    The time column with ``"auto"`` is the first of TIME_COLUMNS present; label columns with
    ``"auto"`` are every label-like name (detector.columns), or the given list; several labels
    mark a row anomalous when any is 1. ``None`` means none. The separator and decimal mark are
    sniffed unless ``sep`` is given. Channels default to every numeric column other than the
    time and label columns, less ``drop_channels`` (a text column that is mostly numbers counts
    as numeric, so a stray bad cell is reported rather than the column silently dropped); an
    undeclared 0/1 column is named in ``notes`` (it may be a label). With ``channels`` given
    (a bundle's), other columns are ignored with a note (``extra_columns="note"``) or, by
    default, left alone silently. The nominal period, in order of precedence:

    * ``train_path`` — that file (all of ``path`` is the test);
    * ``train_until`` — rows before that time (ISO 8601 or unix seconds);
    * ``train_fraction`` — the first ``floor(fraction · T)`` rows, which must be label 0;
    * otherwise the whole file without labels, or with labels the rows before the first
      labelled anomaly.

    Labelled-anomalous rows are never trained on (they are dropped from the nominal period).
    Timestamps (ISO 8601 text, datetimes or unix seconds; naive = UTC) must never decrease.
    The test is the whole labelled file; ``trained_rows_in_test`` says how many leading rows
    of it are the nominal period (an evaluation skips them when they were trained on).
    """
    path = Path(path)
    fmt, frame = _read_frame(path, sep)
    offset = _line_offset(path)
    columns = [str(c) for c in frame.columns]
    timestamp_column = pick(columns, timestamp_column, TIME_COLUMNS)
    labels_used = [c for c in label_columns(columns, label_column) if c != timestamp_column]
    _require_columns(path, frame, [c for c in (timestamp_column, *labels_used) if c is not None])
    notes: list[str] = []
    if channels is None:
        skip = {timestamp_column, *labels_used, *drop_channels}
        _require_columns(path, frame, list(drop_channels))
        names = [str(c) for c in frame.columns if c not in skip and _looks_numeric(frame[c])]
        if not names:
            raise DatasetFormatError(format_hint(path, columns, fmt))
        notes += _binary_notes(frame, names)
    else:
        names = [c for c in channels if c not in set(drop_channels)]
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise DatasetFormatError(
                f"{path}: missing column(s) {', '.join(map(repr, missing))} of the channels "
                f"asked for (the bundle's, or --channels); found {', '.join(map(repr, columns))}"
            )
        ignored = [c for c in columns if c not in {*names, timestamp_column, *labels_used}]
        if ignored and extra_columns == "note":
            notes.append(f"ignored column(s) the bundle does not use: {', '.join(ignored)}")
    values = _channel_matrix(path, frame, names)
    seconds = None
    if timestamp_column is not None:
        source = f"{path}: column {timestamp_column!r}"
        seconds = to_unix_seconds(frame[timestamp_column], source, offset)
        require_monotonic(seconds, source, offset)
    labels = None
    for column in labels_used:
        one = _labels(path, frame, column)
        labels = one if labels is None else np.maximum(labels, one)
    label_column = ", ".join(labels_used) or None
    nominal = np.ones(len(values), bool) if labels is None else labels == 0
    trained = 0
    if train_path is not None:
        train = _load_train_file(Path(train_path), names, timestamp_column, labels_used, fmt)
        test_start = 0
    elif train_until is not None:
        if seconds is None:
            raise DatasetFormatError(f"{path}: train_until needs a timestamp column")
        cut = time_value(train_until)
        n_train = int(np.searchsorted(seconds, cut, side="left"))
        if n_train < 1:
            raise DatasetFormatError(f"{path}: no row before train_until={train_until}")
        train, test_start = (
            values[:n_train][nominal[:n_train]],
            0 if labels is not None else n_train,
        )
        trained = n_train if labels is not None else 0
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
        train, test_start, trained = values[:first], 0, first
    test = values[test_start:] if test_start < len(values) else None
    return Entity(
        name=name or _entity_name(path),
        train=train.astype(np.float32),
        test=None if test is None else test.astype(np.float32),
        test_labels=None if labels is None or test is None else labels[test_start:],
        channel_names=tuple(names),
        test_timestamps=None if seconds is None or test is None else seconds[test_start:],
        table={
            "sep": fmt.sep,
            "decimal": fmt.decimal,
            "timestamp_column": timestamp_column,
            "label_columns": labels_used,
        },
        trained_rows_in_test=trained if test is not None else 0,
        notes=tuple(notes),
    )


def _binary_notes(frame: pd.DataFrame, names: list[str]) -> list[str]:
    """Undeclared 0/1 channels: they may be labels the name did not give away."""
    flagged = []
    for c in names:
        values = pd.to_numeric(frame[c], errors="coerce").dropna().unique()
        if len(values) == 2 and set(values.tolist()) == {0.0, 1.0}:
            flagged.append(c)
    if not flagged:
        return []
    return [
        f"column(s) {', '.join(flagged)} hold only 0 and 1: trained as channels; if one is a "
        "label, name it in --label-column (a label is never a channel and its rows are never "
        "trained on)"
    ]


def time_value(value: str | float) -> float:
    """Unix seconds of an ISO 8601 time with a date, or a number; a time without a date (read
    as today by most parsers) or text that is no time is refused.

    >>> time_value("2026-01-01T00:00:10Z"), time_value("17")
    (1767225610.0, 17.0)
    """
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    text = str(value).strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}", text):
        raise DatasetFormatError(
            f"train_until={value!r}: give a date and time (ISO 8601, e.g. 2026-11-04T10:41:33Z) "
            "or unix seconds; a time without a date is ambiguous"
        )
    try:
        t = pd.Timestamp(text)
    except ValueError as exc:
        raise DatasetFormatError(f"train_until={value!r}: not a time ({exc})") from None
    t = t.tz_localize("UTC") if t.tzinfo is None else t
    return float(t.timestamp())


def _load_train_file(
    path: Path,
    names: list[str],
    timestamp_column: str | None,
    label_columns_used: list[str],
    fmt: TableFormat,
) -> np.ndarray:
    """Read the nominal training file; its labels, if it has those columns, must all be 0."""
    _, frame = _read_frame(path, fmt.sep)
    _require_columns(path, frame, names)
    if timestamp_column is not None and timestamp_column in frame.columns:
        source = f"{path}: column {timestamp_column!r}"
        seconds = to_unix_seconds(frame[timestamp_column], source, _line_offset(path))
        require_monotonic(seconds, source, _line_offset(path))
    for label_column in [c for c in label_columns_used if c in frame.columns]:
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


def _read_frame(path: Path, sep: str | None = None) -> tuple[TableFormat, pd.DataFrame]:
    """The table and the format it was read with (separator and decimal mark sniffed from the
    first lines of a CSV unless `sep` is given)."""
    lower = path.name.lower()
    fmt = TableFormat()
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found")
    try:
        if lower.endswith(_PARQUET_ENDINGS):
            frame = pd.read_parquet(path)
        elif lower.endswith(_CSV_ENDINGS):
            fmt = sniff_format(read_head(path), sep)
            frame = pd.read_csv(path, sep=fmt.sep, decimal=fmt.decimal)
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
    frame.columns = [str(c).strip() for c in frame.columns]
    return fmt, frame


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


def table_paths(data: Path | str) -> list[Path]:
    """The files of `--data`: one file, every CSV/Parquet file of a folder, or a glob pattern
    (sorted naturally).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for n in ("run10.csv", "run2.csv", "notes.md"):
    ...         _ = (Path(d) / n).write_text("a\\n1\\n")
    ...     [p.name for p in table_paths(d)], [p.name for p in table_paths(f"{d}/run1*.csv")]
    (['run2.csv', 'run10.csv'], ['run10.csv'])
    """
    from model_training.data.files import natural_key

    text = str(data)
    path = Path(text)
    if any(ch in text for ch in "*?["):
        base = Path(path.anchor) if path.is_absolute() else Path(".")
        pattern = str(path.relative_to(base)) if path.is_absolute() else text
        found = [p for p in base.glob(pattern) if p.is_file()]
        if not found:
            raise DatasetFormatError(f"{text}: no file matches")
    elif path.is_dir():
        found = [
            p
            for p in path.iterdir()
            if p.is_file() and p.name.lower().endswith((*_CSV_ENDINGS, *_PARQUET_ENDINGS))
        ]
        if not found:
            raise DatasetFormatError(f"{path}: no CSV or Parquet file in this folder")
    else:
        return [path]
    return sorted(found, key=lambda p: natural_key(str(p)))


def entity_names(paths: Sequence[Path]) -> list[str]:
    """Names of the tables' entities: the file stem, with as many parent folders as it takes to
    tell two equal stems apart (rig_a/1.csv and rig_b/1.csv → rig_a/1 and rig_b/1).

    >>> entity_names([Path("rig_a/1.csv"), Path("rig_b/1.csv"), Path("rig_b/2.csv")])
    ['rig_a/1', 'rig_b/1', '2']
    """
    names = [_entity_name(p) for p in paths]
    depth = [0] * len(paths)
    while True:
        seen: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            seen.setdefault(n, []).append(i)
        clashes = [ix for ix in seen.values() if len(ix) > 1]
        if not clashes:
            return names
        grown = False
        for ix in clashes:
            for i in ix:
                parents = paths[i].resolve().parent.parts
                if depth[i] < len(parents) - 1:
                    depth[i] += 1
                    grown = True
                    names[i] = "/".join(
                        [*parents[len(parents) - depth[i] :], _entity_name(paths[i])]
                    )
        if not grown:
            raise DatasetFormatError(f"cannot tell the files {', '.join(map(str, paths))} apart")
