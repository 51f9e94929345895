"""File helpers shared by the loaders: plain/gzip lookup, natural order, strict numeric text.

Benchmarks are distributed both plain and gzipped, so every loader accepts either. Parsing uses
pandas for speed; only when that fails (or yields NaN) is the file re-read line by line, so the
error can name the exact line and column a user has to fix.
"""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from model_training.data.entity import DatasetFormatError


def natural_key(name: str) -> tuple[str | int, ...]:
    """Sort key that orders embedded numbers by value (machine-1-2 before machine-1-10)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def require_dir(path: Path) -> Path:
    """Fail with the folder's name rather than a bare FileNotFoundError deep inside a loader."""
    if not path.is_dir():
        raise DatasetFormatError(f"{path}: folder not found")
    return path


def find_file(directory: Path, stem: str, suffix: str) -> Path:
    """Return ``stem+suffix`` or its ``.gz`` twin; having both is ambiguous and rejected."""
    plain = directory / f"{stem}{suffix}"
    zipped = directory / f"{stem}{suffix}.gz"
    if plain.is_file() and zipped.is_file():
        raise DatasetFormatError(f"{plain}: both it and {zipped.name} exist; keep one")
    if plain.is_file():
        return plain
    if zipped.is_file():
        return zipped
    raise DatasetFormatError(f"{plain}: file not found (nor {zipped.name})")


def list_stems(directory: Path, suffix: str) -> list[str]:
    """Names of the ``*suffix`` / ``*suffix.gz`` files in ``directory``, naturally sorted."""
    stems: set[str] = set()
    for entry in require_dir(directory).iterdir():
        for ending in (suffix, f"{suffix}.gz"):
            if entry.is_file() and entry.name.endswith(ending):
                stem = entry.name[: -len(ending)]
                if stem in stems:
                    raise DatasetFormatError(f"{entry}: both plain and .gz copies exist; keep one")
                stems.add(stem)
    return sorted(stems, key=natural_key)


def open_text(path: Path) -> IO[str]:
    """Open a possibly gzipped text file."""
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline=None)
    return path.open("r", encoding="utf-8")


def read_numeric_text(path: Path, n_columns: int | None = None) -> np.ndarray:
    """Read a headerless comma-separated file of finite numbers into a float64 [rows, cols] array.

    ``n_columns`` pins the expected width (e.g. test must match train). Ragged rows, text and
    non-finite values raise ``DatasetFormatError`` naming the file, line and column.
    """
    try:
        frame = pd.read_csv(path, header=None, sep=",", dtype=np.float64, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise DatasetFormatError(f"{path}: file is empty") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read: {exc}") from exc
    except (pd.errors.ParserError, ValueError) as exc:
        _diagnose(path, n_columns)
        raise DatasetFormatError(f"{path}: not comma-separated numbers: {exc}") from exc
    values = frame.to_numpy(dtype=np.float64)
    if (n_columns is not None and values.shape[1] != n_columns) or not np.isfinite(values).all():
        _diagnose(path, n_columns)
        raise DatasetFormatError(f"{path}: expected {n_columns} finite values per line")
    return values


def _diagnose(path: Path, n_columns: int | None) -> None:
    """Re-read ``path`` slowly and raise at the first bad line; return if none is found."""
    expected = n_columns
    try:
        with open_text(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                fields = line.strip().split(",")
                if expected is None:
                    expected = len(fields)
                if len(fields) != expected:
                    raise DatasetFormatError(
                        f"{path}: line {line_no}: expected {expected} comma-separated values, "
                        f"found {len(fields)}"
                    )
                for col, field in enumerate(fields, start=1):
                    _check_number(path, line_no, col, field)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read: {exc}") from exc


def _check_number(path: Path, line_no: int, col: int, field: str) -> None:
    try:
        value = float(field)
    except ValueError:
        raise DatasetFormatError(
            f"{path}: line {line_no}, column {col}: not a number: {field.strip()!r}"
        ) from None
    if not math.isfinite(value):
        raise DatasetFormatError(
            f"{path}: line {line_no}, column {col}: non-finite value {field!r}"
        )


def binary_labels(values: np.ndarray, source: str, line_offset: int | None = None) -> np.ndarray:
    """Validate 0/1 labels and return them as int8; ``source`` prefixes the error message.

    ``line_offset`` turns a 0-based row into a text-file line number (1 headerless, 2 with header);
    without it the message gives the 0-based row.
    """
    flat = np.asarray(values).reshape(-1)
    bad = np.flatnonzero(~np.isin(flat, (0, 1)))
    if bad.size:
        first = int(bad[0])
        raise DatasetFormatError(
            f"{source}: {row_ref(first, line_offset)}: label {flat[first]!r} is not 0 or 1 "
            f"({bad.size} bad label(s) in total)"
        )
    return flat.astype(np.int8)


def row_ref(row: int, line_offset: int | None) -> str:
    """Describe a 0-based data row as a text-file line when the offset is known, else as a row."""
    return f"row {row}" if line_offset is None else f"line {row + line_offset}"
