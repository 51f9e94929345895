"""Loader for the Numenta Anomaly Benchmark (NAB v1.1 corpus).

Layout::

    data/<category>/<name>.csv[.gz]   timestamp,value  (one univariate series per file)
    labels/combined_windows.json      {"<category>/<name>.csv": [[start, end], ...]}

NAB has no nominal training split. The first ``train_fraction`` of each series (default 15%, the
share NAB calls its probationary period) becomes ``train`` and the rest ``test``. NAB's scorer
also caps that period at 750 rows (``min(floor(0.15 T), 0.15 * 5000)``); pass
``max_train_rows=750`` to reproduce it. Window ends are inclusive, as in NAB's scorer.

In the real corpus six windows begin inside the first 15% (machine_temperature_system_failure and
five Twitter_volume series): 3,836 of the 33,495 in-window rows then land in ``train``, which is
not purely nominal there, and drop out of the test labels. With ``max_train_rows=750`` none do.

Rows are kept in file order: a few real files repeat a timestamp, and one
(machine_temperature_system_failure) steps back an hour, so timestamps are not checked for order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model_training.data.entity import DatasetFormatError, Entity
from model_training.data.files import find_file, list_stems, natural_key, require_dir
from model_training.data.timestamps import to_unix_seconds

_WINDOWS = Path("labels") / "combined_windows.json"


def load_nab(
    root: Path,
    names: Sequence[str] | None = None,
    train_fraction: float = 0.15,
    max_train_rows: int | None = None,
) -> list[Entity]:
    """Load NAB series named ``"category/name"`` (all under ``data/`` by default).

    ``train`` is the first ``floor(train_fraction * T)`` rows (at most ``max_train_rows``); the
    remaining rows are ``test`` with their labels and unix-second timestamps (naive times = UTC).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    root = require_dir(Path(root))
    data_dir = require_dir(root / "data")
    windows = _read_windows(root / _WINDOWS)
    if names is None:
        categories = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
        chosen = [
            f"{cat}/{stem}" for cat in categories for stem in list_stems(data_dir / cat, ".csv")
        ]
        chosen.sort(key=natural_key)
    else:
        chosen = [name.removesuffix(".gz").removesuffix(".csv") for name in names]
    if not chosen:
        raise DatasetFormatError(f"{data_dir}: no <category>/<name>.csv[.gz] files")
    return [_load_series(root, name, windows, train_fraction, max_train_rows) for name in chosen]


def _load_series(
    root: Path,
    name: str,
    all_windows: dict[str, list[tuple[float, float]]],
    train_fraction: float,
    max_train_rows: int | None,
) -> Entity:
    category, _, stem = name.partition("/")
    if not stem or "/" in stem:
        raise ValueError(f"NAB series names look like 'category/name', got {name!r}")
    path = find_file(root / "data" / category, stem, ".csv")
    frame = _read_series(path)
    windows = all_windows.get(f"{name}.csv")
    if windows is None:
        raise DatasetFormatError(f"{root / _WINDOWS}: no entry for '{name}.csv' ({path})")
    seconds = to_unix_seconds(frame["timestamp"], f"{path}: column timestamp", line_offset=2)
    values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = int(bad[0])
        raise DatasetFormatError(
            f"{path}: line {row + 2}, column value: not a finite number: "
            f"{frame['value'].iloc[row]!r}"
        )
    n_train = math.floor(train_fraction * len(values))
    if max_train_rows is not None:
        n_train = min(n_train, max_train_rows)
    if n_train < 1 or n_train >= len(values):
        raise DatasetFormatError(
            f"{path}: {len(values)} rows leave no train or no test part at "
            f"train_fraction={train_fraction}"
        )
    labels = np.zeros(len(values), dtype=np.int8)
    for start, end in windows:
        labels[(seconds >= start) & (seconds <= end)] = 1
    column = values.astype(np.float32)[:, None]
    return Entity(
        name=name,
        train=column[:n_train],
        test=column[n_train:],
        test_labels=labels[n_train:],
        channel_names=("value",),
        test_timestamps=seconds[n_train:],
    )


def _read_series(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError) as exc:
        raise DatasetFormatError(f"{path}: cannot parse as CSV: {exc}") from exc
    for column in ("timestamp", "value"):
        if column not in frame.columns:
            raise DatasetFormatError(f"{path}: missing column {column!r}")
    if frame.empty:
        raise DatasetFormatError(f"{path}: no data rows")
    return frame


def _read_windows(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Parse the label windows into unix seconds, keyed like the JSON (``category/name.csv``)."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found")
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise DatasetFormatError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise DatasetFormatError(f"{path}: expected an object mapping file names to windows")
    parsed: dict[str, list[tuple[float, float]]] = {}
    for key, windows in raw.items():
        ok = isinstance(windows, list) and all(
            isinstance(w, list) and len(w) == 2 and all(isinstance(t, str) for t in w)
            for w in windows
        )
        if not ok:
            raise DatasetFormatError(f"{path}: {key}: expected a list of [start, end] strings")
        flat = pd.Series([t for window in windows for t in window], dtype=object)
        seconds = to_unix_seconds(flat, f"{path}: {key}") if len(flat) else np.empty(0)
        pairs = [(float(seconds[i]), float(seconds[i + 1])) for i in range(0, len(seconds), 2)]
        for start, end in pairs:
            if end < start:
                raise DatasetFormatError(f"{path}: {key}: window ends before it starts")
        parsed[key] = pairs
    return parsed
