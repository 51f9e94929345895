"""Dataset loaders: every benchmark or user file becomes a list of ``Entity`` objects.

``load_dataset`` is the single dispatch point used by training and benchmarking code, so the
command line can name a dataset kind and a path without knowing each loader's signature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from model_training.data.entity import DatasetFormatError, Entity
from model_training.data.nab import load_nab
from model_training.data.nasa import load_nasa
from model_training.data.smd import load_smd, smd_interpretation
from model_training.data.table import entity_names, load_table, table_paths

DatasetKind = Literal["smd", "smap", "msl", "nab", "table"]

__all__ = [
    "DatasetFormatError",
    "DatasetKind",
    "Entity",
    "load_dataset",
    "load_nab",
    "load_nasa",
    "load_smd",
    "load_table",
    "smd_interpretation",
]


def load_dataset(kind: DatasetKind, path: Path, **kw: Any) -> list[Entity]:
    """Load any supported dataset by kind; extra keywords go to that kind's loader.

    ``path`` is the dataset root for the benchmarks and the file itself for ``"table"``.
    """
    path = Path(path)
    if kind == "smd":
        return load_smd(path, **kw)
    if kind == "smap":
        return load_nasa(path, "SMAP", **kw)
    if kind == "msl":
        return load_nasa(path, "MSL", **kw)
    if kind == "nab":
        return load_nab(path, **kw)
    if kind == "table":
        paths = table_paths(path)
        names = [kw.pop("name")] if kw.get("name") and len(paths) == 1 else entity_names(paths)
        kw.pop("name", None)
        return [load_table(p, name=n, **kw) for p, n in zip(paths, names, strict=True)]
    raise ValueError(f"unknown dataset kind {kind!r}; expected smd, smap, msl, nab or table")
