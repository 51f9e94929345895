"""Timestamp columns to unix seconds, with errors that point at the offending row.

Detectors and the service work in float unix seconds (UTC). Sources store time as ISO 8601
strings (NAB, most CSV exports), native datetimes (Parquet) or already-numeric epochs; all three
end up as one float64 vector here. Naive times are taken as UTC, because the benchmark files carry
no zone and a local-time guess would shift labels across machines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from model_training.data.entity import DatasetFormatError
from model_training.data.files import row_ref

_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def to_unix_seconds(values: pd.Series, source: str, line_offset: int | None = None) -> np.ndarray:
    """Convert a timestamp column to float64 unix seconds; numeric columns pass through.

    ``source`` names the file and column in errors; ``line_offset`` as in ``row_ref``.
    """
    if pd.api.types.is_bool_dtype(values):
        raise DatasetFormatError(f"{source}: booleans are not timestamps")
    if pd.api.types.is_numeric_dtype(values):
        seconds = values.to_numpy(dtype=np.float64)
    else:
        if pd.api.types.is_datetime64_any_dtype(values):
            parsed = values
            parsed = parsed.dt.tz_localize("UTC") if parsed.dt.tz is None else parsed
        else:
            parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
        seconds = (parsed - _EPOCH).dt.total_seconds().to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(seconds))
    if bad.size:
        row = int(bad[0])
        raise DatasetFormatError(
            f"{source}: {row_ref(row, line_offset)}: cannot read timestamp {values.iloc[row]!r} "
            "(expected ISO 8601 text or unix seconds)"
        )
    return seconds


def require_monotonic(seconds: np.ndarray, source: str, line_offset: int | None = None) -> None:
    """Reject time going backwards: windows and online scoring assume rows are in time order."""
    back = np.flatnonzero(np.diff(seconds) < 0)
    if back.size:
        row = int(back[0]) + 1
        raise DatasetFormatError(
            f"{source}: {row_ref(row, line_offset)}: timestamps are not monotonic "
            f"(goes back from {row_ref(row - 1, line_offset)}; {back.size} decrease(s) in total)"
        )
