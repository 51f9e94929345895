"""Loader for the NASA SMAP and MSL telemetry (telemanom layout, Hundman et al., KDD 2018).

Layout::

    train/<chan>.npy           nominal rows [T_train, C] (column 0 is the telemetry value,
                               the rest are one-hot command flags)
    test/<chan>.npy            rows [T_test, C]
    labeled_anomalies.csv      chan_id, spacecraft, anomaly_sequences, class, num_values

``anomaly_sequences`` is a literal like ``[[1899, 2099], [4183, 4199]]``; each pair is taken as
0-based ``[start, end)`` (end-exclusive), as the project's task text specifies. It is parsed as
JSON (with ``ast.literal_eval`` as a fallback), never evaluated as code.
"""

from __future__ import annotations

import ast
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from model_training.data.entity import DatasetFormatError, Entity
from model_training.data.files import natural_key, require_dir

_COLUMNS = ("chan_id", "spacecraft", "anomaly_sequences", "num_values")


def load_nasa(
    root: Path, spacecraft: Literal["SMAP", "MSL"], channels: Sequence[str] | None = None
) -> list[Entity]:
    """Load one spacecraft's channels (all listed in the label file by default), naturally sorted.

    Each channel is its own entity, named by its id (e.g. ``P-1``); ``num_values`` in the label
    file must equal the test length, which catches mismatched downloads.
    """
    root = require_dir(Path(root))
    table = _read_label_table(root / "labeled_anomalies.csv", spacecraft)
    names = sorted(table, key=natural_key) if channels is None else list(channels)
    if not names:
        raise DatasetFormatError(f"{root / 'labeled_anomalies.csv'}: no {spacecraft} channels")
    train_dir = require_dir(root / "train")
    test_dir = require_dir(root / "test")
    entities = []
    for name in names:
        if name not in table:
            raise DatasetFormatError(
                f"{root / 'labeled_anomalies.csv'}: no {spacecraft} row for channel {name!r}"
            )
        segments, num_values = table[name]
        entities.append(_load_channel(train_dir, test_dir, name, segments, num_values))
    return entities


def _load_channel(
    train_dir: Path, test_dir: Path, name: str, segments: list[tuple[int, int]], num_values: int
) -> Entity:
    train = _load_npy(train_dir / f"{name}.npy")
    test_path = test_dir / f"{name}.npy"
    test = _load_npy(test_path)
    if test.shape[1] != train.shape[1]:
        raise DatasetFormatError(
            f"{test_path}: {test.shape[1]} columns but the training file has {train.shape[1]}"
        )
    if num_values != len(test):
        raise DatasetFormatError(
            f"{test_path}: {len(test)} rows but labeled_anomalies.csv says num_values={num_values}"
        )
    labels = np.zeros(len(test), dtype=np.int8)
    for start, end in segments:
        if end > len(test):
            raise DatasetFormatError(
                f"labeled_anomalies.csv: channel {name}: segment [{start}, {end}) "
                f"runs past the {len(test)} test rows"
            )
        labels[start:end] = 1
    return Entity(
        name=name,
        train=train.astype(np.float32),
        test=test.astype(np.float32),
        test_labels=labels,
        channel_names=tuple(f"ch{i:02d}" for i in range(train.shape[1])),
    )


def _load_npy(path: Path) -> np.ndarray:
    """Load a 2-D numeric array without pickle (object arrays are refused, not executed)."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetFormatError(f"{path}: not a readable .npy array: {exc}") from exc
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number) or len(array) == 0:
        raise DatasetFormatError(
            f"{path}: expected a non-empty 2-D numeric array, got {array.dtype} {array.shape}"
        )
    if not np.isfinite(array).all():
        row = int(np.flatnonzero(~np.isfinite(array).all(axis=1))[0])
        raise DatasetFormatError(f"{path}: row {row}: non-finite value")
    return array


class DuplicateChannelWarning(UserWarning):
    """A channel listed more than once in labeled_anomalies.csv (SMAP's P-2 is)."""


def _read_label_table(path: Path, spacecraft: str) -> dict[str, tuple[list[tuple[int, int]], int]]:
    """Map chan_id -> (segments, num_values) for one spacecraft."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise DatasetFormatError(f"{path}: cannot parse: {exc}") from exc
    missing = [col for col in _COLUMNS if col not in frame.columns]
    if missing:
        raise DatasetFormatError(f"{path}: missing column(s) {', '.join(missing)}")
    table: dict[str, tuple[list[tuple[int, int]], int]] = {}
    for position, row in enumerate(frame.to_dict("records")):
        if row["spacecraft"].strip() != spacecraft:
            continue
        line = f"{path}: line {position + 2}"
        chan = row["chan_id"].strip()
        if chan in table:  # the published SMAP file lists P-2 twice; common practice: first row
            warnings.warn(
                f"{line}: channel {chan!r} listed again for {spacecraft}; the first row is used",
                DuplicateChannelWarning,
                stacklevel=2,
            )
            continue
        try:
            num_values = int(row["num_values"])
        except ValueError:
            raise DatasetFormatError(
                f"{line}: column num_values: not an integer: {row['num_values']!r}"
            ) from None
        table[chan] = (_parse_sequences(line, row["anomaly_sequences"]), num_values)
    return table


def _parse_sequences(where: str, text: str) -> list[tuple[int, int]]:
    """Parse ``[[s, e], ...]`` as data (JSON, else a Python literal) and validate each pair."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise DatasetFormatError(
                f"{where}: column anomaly_sequences: not a list of pairs: {text!r}"
            ) from None
    if not isinstance(value, list | tuple):
        raise DatasetFormatError(f"{where}: column anomaly_sequences: not a list: {text!r}")
    segments = []
    for pair in value:
        ok = isinstance(pair, list | tuple) and len(pair) == 2
        if not ok or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
            raise DatasetFormatError(f"{where}: column anomaly_sequences: bad pair {pair!r}")
        start, end = int(pair[0]), int(pair[1])
        if start < 0 or end <= start:
            raise DatasetFormatError(
                f"{where}: column anomaly_sequences: empty or negative segment {pair!r}"
            )
        segments.append((start, end))
    return segments
