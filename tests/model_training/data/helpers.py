"""Shared helper: the loader tests build tiny dataset layouts in tmp_path, plain or gzipped."""

from __future__ import annotations

import gzip
from pathlib import Path


def write_text(path: Path, text: str) -> Path:
    """Write a text file (gzipped when the name ends in .gz), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
