"""Column conventions of a user's table, shared by the trainer and `tad replay`.

What `tad train --kind table` trains on must be what `tad replay --csv` sends: the same time
column, the label column never a channel. With "auto" the first of these names present (case
insensitive) is used.

>>> pick(["Time", "temp", "label"], AUTO, TIME_COLUMNS), pick(["a"], AUTO, LABEL_COLUMNS)
('Time', None)
"""

from __future__ import annotations

from collections.abc import Sequence

TIME_COLUMNS = ("timestamp", "time", "datetime", "date", "ts")
LABEL_COLUMNS = ("label", "is_anomaly", "anomaly")
AUTO = "auto"


def pick(columns: Sequence[str], wanted: str | None, candidates: Sequence[str]) -> str | None:
    """The column to use: an explicit name (as given), None, or with "auto" the first of the
    candidates present."""
    if wanted != AUTO:
        return wanted
    present = {str(c).lower(): str(c) for c in columns}
    return next((present[c] for c in candidates if c in present), None)
