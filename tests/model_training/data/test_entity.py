"""Entity invariants and the load_dataset dispatcher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_training.data import DatasetFormatError, DatasetKind, Entity, load_dataset


def _entity(**overrides: object) -> Entity:
    fields: dict[str, object] = {
        "name": "e",
        "train": np.zeros((4, 2), dtype=np.float32),
        "test": np.zeros((3, 2), dtype=np.float32),
        "test_labels": np.array([0, 1, 0], dtype=np.int8),
        "channel_names": ("a", "b"),
    }
    fields.update(overrides)
    return Entity(**fields)  # type: ignore[arg-type]


def test_valid_entity() -> None:
    entity = _entity(test_timestamps=np.arange(3, dtype=np.float64))
    assert entity.n_channels == 2
    assert entity.test_timestamps is not None


@pytest.mark.parametrize(
    "overrides",
    [
        {"train": np.zeros((4, 2), dtype=np.float64)},
        {"channel_names": ("a",)},
        {"test": np.zeros((3, 3), dtype=np.float32)},
        {"test_labels": np.array([0, 1], dtype=np.int8)},
        {"test_labels": np.array([0, 2, 0], dtype=np.int8)},
        {"test": None},
        {"test_timestamps": np.arange(2, dtype=np.float64)},
    ],
)
def test_inconsistent_entity_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _entity(**overrides)


def test_format_error_is_value_error() -> None:
    assert issubclass(DatasetFormatError, ValueError)


def test_load_dataset_dispatches_table(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("x\n" + "\n".join(str(i) for i in range(10)) + "\n")
    (entity,) = load_dataset("table", path, timestamp_column=None)
    assert entity.name == "t"
    assert entity.channel_names == ("x",)


def test_load_dataset_missing_root(tmp_path: Path) -> None:
    kinds: tuple[DatasetKind, ...] = ("smd", "smap", "msl", "nab")
    for kind in kinds:
        with pytest.raises(DatasetFormatError, match="folder not found"):
            load_dataset(kind, tmp_path / "nope")


def test_load_dataset_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset kind"):
        load_dataset("swat", tmp_path)  # type: ignore[arg-type]
