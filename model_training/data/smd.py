"""Loader for the Server Machine Dataset (SMD, OmniAnomaly, KDD 2019).

Layout (the original ServerMachineDataset, plain or gzipped)::

    train/machine-X-Y.txt[.gz]                 nominal rows, comma-separated floats (38 columns)
    test/machine-X-Y.txt[.gz]                  rows that may contain anomalies
    test_label/machine-X-Y.txt[.gz]            one 0/1 per test row
    interpretation_label/machine-X-Y.txt[.gz]  ``start-end:ch,ch,...`` (see smd_interpretation)

Each machine is one entity; the papers train one model per machine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model_training.data.entity import DatasetFormatError, Entity
from model_training.data.files import (
    binary_labels,
    find_file,
    list_stems,
    open_text,
    read_numeric_text,
    require_dir,
)

_SUFFIX = ".txt"
_INTERPRETATION = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*:\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*$")


def load_smd(root: Path, machines: Sequence[str] | None = None) -> list[Entity]:
    """Load SMD machines (all found in ``train/`` by default), naturally sorted by name.

    The width is taken from the training file (38 in the real data) and every other file of the
    machine must agree with it. Channels are named ``ch00``, ``ch01``, ... in file order.
    """
    root = require_dir(Path(root))
    train_dir = require_dir(root / "train")
    test_dir = require_dir(root / "test")
    label_dir = require_dir(root / "test_label")
    names = list_stems(train_dir, _SUFFIX) if machines is None else list(machines)
    if not names:
        raise DatasetFormatError(f"{train_dir}: no *{_SUFFIX} or *{_SUFFIX}.gz files")
    return [_load_machine(train_dir, test_dir, label_dir, name) for name in names]


def _load_machine(train_dir: Path, test_dir: Path, label_dir: Path, name: str) -> Entity:
    train_path = find_file(train_dir, name, _SUFFIX)
    test_path = find_file(test_dir, name, _SUFFIX)
    label_path = find_file(label_dir, name, _SUFFIX)
    train = read_numeric_text(train_path)
    test = read_numeric_text(test_path, n_columns=train.shape[1])
    labels = read_numeric_text(label_path, n_columns=1)
    if len(labels) != len(test):
        raise DatasetFormatError(
            f"{label_path}: {len(labels)} labels but {test_path.name} has {len(test)} rows"
        )
    return Entity(
        name=name,
        train=train.astype(np.float32),
        test=test.astype(np.float32),
        test_labels=binary_labels(labels, str(label_path), line_offset=1),
        channel_names=tuple(f"ch{i:02d}" for i in range(train.shape[1])),
    )


def smd_interpretation(root: Path, machine: str) -> list[tuple[int, int, list[int]]]:
    """Parse a machine's interpretation labels: which channels explain each anomaly segment.

    Returns ``(start, end_exclusive, channels)`` with 0-based test-row indices, so
    ``test[start:end_exclusive]`` is the segment, and 0-based channel indices into
    ``Entity.channel_names`` (the file's channel numbers are 1-based: 1..38).

    The row numbers are often described as 1-based and inclusive, but the published
    ``test_label`` files equal ``labels[start:end] = 1`` with the numbers taken as written (checked
    on all 19 shipped machines: 1-based-inclusive reading is off by one at every segment start,
    291 rows; the as-written reading differs in only 25 rows where the two files genuinely
    disagree). The numbers are therefore returned unchanged, consistent with ``test_labels``.
    """
    path = find_file(require_dir(Path(root) / "interpretation_label"), machine, _SUFFIX)
    segments: list[tuple[int, int, list[int]]] = []
    try:
        with open_text(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                if line.strip():
                    segments.append(_parse_interpretation(path, line_no, line))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: cannot read: {exc}") from exc
    return segments


def _parse_interpretation(path: Path, line_no: int, line: str) -> tuple[int, int, list[int]]:
    match = _INTERPRETATION.match(line)
    if match is None:
        raise DatasetFormatError(
            f"{path}: line {line_no}: expected 'start-end:ch,ch,...', got {line.strip()!r}"
        )
    start, end = int(match.group(1)), int(match.group(2))
    channels = [int(ch) for ch in match.group(3).split(",")]
    if end <= start:
        raise DatasetFormatError(f"{path}: line {line_no}: empty row range {start}-{end}")
    if min(channels) < 1:
        raise DatasetFormatError(f"{path}: line {line_no}: channel numbers are 1-based")
    return start, end, [ch - 1 for ch in channels]
