"""The trainer's user-facing errors, importable without pandas or torch.

`tad` runs in the serving install too (no pandas, no torch): its error path must name a bad
file or option in one line there, so the classes it catches live here, away from the loaders.
"""

from __future__ import annotations


class DatasetFormatError(ValueError):
    """Malformed dataset file; message names the file (and line/column where known)."""
