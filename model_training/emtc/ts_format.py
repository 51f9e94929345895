"""Reader for the sktime/aeon `.ts` format used by the UEA archive.

Why our own parser: the service must not depend on sktime/aeon just to read a text file, and a
malformed upload has to fail with a message that names the file and the line.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class TsFormatError(ValueError):
    """A `.ts` file is malformed; the message names the file and the 1-based line number."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = str(path)
        self.line = line


@dataclass
class TsMeta:
    """Header values of a `.ts` file (only the ones we use; the rest land in `extra`)."""

    problem_name: str = ""
    dimensions: int | None = None
    equal_length: bool | None = None
    series_length: int | None = None
    class_labels: list[str] = field(default_factory=list)
    missing: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def _parse_value(tok: str, path: str | Path, lineno: int) -> float:
    tok = tok.strip()
    if tok == "?":
        return float("nan")
    try:
        return float(tok)
    except ValueError:
        raise TsFormatError(path, lineno, f"not a number: {tok[:40]!r}") from None


def _parse_header(line: str, meta: TsMeta, path: str | Path, lineno: int) -> None:
    parts = line.split(maxsplit=1)
    key = parts[0][1:].lower()
    rest = parts[1].strip() if len(parts) > 1 else ""
    if key == "problemname":
        meta.problem_name = rest
    elif key == "dimensions":
        if not rest.isdigit() or int(rest) < 1:
            raise TsFormatError(path, lineno, f"bad @dimensions {rest!r}")
        meta.dimensions = int(rest)
    elif key == "equallength":
        meta.equal_length = rest.lower() == "true"
    elif key == "serieslength":
        if not rest.isdigit():
            raise TsFormatError(path, lineno, f"bad @seriesLength {rest!r}")
        meta.series_length = int(rest)
    elif key == "missing":
        meta.missing = rest.lower() == "true"
    elif key == "classlabel":
        toks = rest.split()
        if not toks or toks[0].lower() not in ("true", "false"):
            raise TsFormatError(path, lineno, f"bad @classLabel {rest!r}")
        meta.class_labels = toks[1:] if toks[0].lower() == "true" else []
    else:
        meta.extra[key] = rest


def parse_ts_lines(
    lines: list[str], path: str | Path = "<memory>"
) -> tuple[list[np.ndarray], np.ndarray, TsMeta]:
    """Parse the text of a `.ts` file → (series [T_i, D] float64, labels (str), meta)."""
    meta = TsMeta()
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise TsFormatError(path, lineno, "data line before @data")
            if line.lower().startswith("@data"):
                in_data = True
            else:
                _parse_header(line, meta, path, lineno)
            continue
        if meta.class_labels:
            body, sep, label = line.rpartition(":")
            if not sep:
                raise TsFormatError(path, lineno, "missing class label")
            label = label.strip()
            if label not in meta.class_labels:
                raise TsFormatError(path, lineno, f"label {label!r} not in @classLabel")
            labels.append(label)
        else:
            body = line
        dims = body.split(":")
        if meta.dimensions is not None and len(dims) != meta.dimensions:
            raise TsFormatError(
                path, lineno, f"{len(dims)} dimensions, header says {meta.dimensions}"
            )
        values = [[_parse_value(t, path, lineno) for t in d.split(",")] for d in dims]
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            raise TsFormatError(path, lineno, f"dimensions of unequal length {sorted(lengths)}")
        arr = np.asarray(values, dtype=np.float64).T  # [T_i, D]
        if series and arr.shape[1] != series[0].shape[1]:
            raise TsFormatError(path, lineno, "number of dimensions changes between cases")
        if meta.equal_length and meta.series_length and arr.shape[0] != meta.series_length:
            raise TsFormatError(
                path, lineno, f"length {arr.shape[0]}, header says {meta.series_length}"
            )
        series.append(arr)
    if not in_data:
        raise TsFormatError(path, len(lines), "no @data section")
    if not series:
        raise TsFormatError(path, len(lines), "no cases after @data")
    if meta.dimensions is None:
        meta.dimensions = series[0].shape[1]
    return series, np.asarray(labels, dtype=str), meta


def load_ts(path: str | Path) -> tuple[list[np.ndarray], np.ndarray, TsMeta]:
    """Read a `.ts` or `.ts.gz` file → (series: list of [T_i, D], labels: str array, meta)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="strict") as fh:
        lines = fh.read().splitlines()
    return parse_ts_lines(lines, path)


def to_fixed_length(series: list[np.ndarray], length: int | None = None) -> np.ndarray:
    """Stack series into [N, length, D] by linear resampling of each series onto `length` points.

    Why resampling rather than padding: every model position then covers the same fraction of the
    utterance (JapaneseVowels 7–29 steps), and no artificial zeros enter the convolutions. Missing
    values ('?', NaN) are filled by linear interpolation over the observed points of that variate;
    an all-missing variate becomes 0. `length` defaults to the longest series.
    """
    if not series:
        raise ValueError("no series given")
    n_dims = series[0].shape[1]
    if length is None:
        length = max(s.shape[0] for s in series)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    out = np.zeros((len(series), length, n_dims), dtype=np.float64)
    grid = np.linspace(0.0, 1.0, length)
    for i, s in enumerate(series):
        if s.ndim != 2 or s.shape[1] != n_dims:
            raise ValueError(f"series {i} has shape {s.shape}, expected [T, {n_dims}]")
        src = np.linspace(0.0, 1.0, s.shape[0]) if s.shape[0] > 1 else np.zeros(1)
        for d in range(n_dims):
            ok = np.isfinite(s[:, d])
            if ok.any():
                out[i, :, d] = np.interp(grid, src[ok], s[ok, d])
    return out
