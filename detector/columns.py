"""Column conventions of a user's table, shared by the trainer and `tad replay`.

What `tad train --kind table` trains on must be what `tad replay --csv` sends: the same
separator and decimal mark, the same time column, and no label column ever a channel. Pure
standard library, so the serving install (no pandas) reads files exactly as training did.

* time column — with "auto" the first of TIME_COLUMNS present (case insensitive);
* label columns — with "auto" *every* column whose name looks like a label (`label`,
  `anomaly`, `is_anomaly`, `changepoint`, `fault…`, `attack`, `target`, …): several are
  allowed, the union marks anomalous rows, and none is ever a channel;
* separator and decimal mark — sniffed from the file's first lines (`,` `;` tab `|`; a `;`
  file whose numbers use `,` as decimal mark is read as such), or given (`--sep`).

>>> pick(["Time", "temp", "label"], AUTO, TIME_COLUMNS), pick(["a"], AUTO, TIME_COLUMNS)
('Time', None)
>>> label_columns(["time", "temp", "anomaly", "changepoint", "fault_flag"], AUTO)
['anomaly', 'changepoint', 'fault_flag']
>>> sniff_format("time;temp;label\\n2026-01-01T00:00:00;1,5;0\\n")
TableFormat(sep=';', decimal=',')
"""

from __future__ import annotations

import csv
import gzip
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TIME_COLUMNS = ("timestamp", "time", "datetime", "date", "ts")
LABEL_COLUMNS = ("label", "is_anomaly", "anomaly")  # the first present is the primary label
AUTO = "auto"
SEPARATORS = ",;\t|"
_LABEL_LIKE = re.compile(
    r"^(labels?|is_?anomal(y|ous)|anomal(y|ies|ous)|changepoints?|change_?points?|"
    r"fault\w*|\w*_fault|is_?fault\w*|attacks?|is_?attack|targets?|outliers?|is_?outlier|"
    r"ground_?truth|gt|y_?true)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TableFormat:
    sep: str = ","
    decimal: str = "."


def pick(columns: Sequence[str], wanted: str | None, candidates: Sequence[str]) -> str | None:
    """The column to use: an explicit name (as given), None, or with "auto" the first of the
    candidates present."""
    if wanted != AUTO:
        return wanted
    present = {str(c).lower(): str(c) for c in columns}
    return next((present[c] for c in candidates if c in present), None)


def is_label_like(name: str) -> bool:
    """A column name that reads as a label, never as a sensor.

    >>> [is_label_like(n) for n in ("Anomaly", "fault_flag", "valve_fault", "temperature")]
    [True, True, True, False]
    """
    return bool(_LABEL_LIKE.match(str(name).strip()))


def label_columns(columns: Sequence[str], wanted: str | Sequence[str] | None) -> list[str]:
    """Label columns: "auto" → every label-like name present; a comma-separated string or a
    list → those (as given); None or "none" → none."""
    if wanted is None:
        return []
    if isinstance(wanted, str):
        if wanted.lower() == "none":
            return []
        if wanted == AUTO:
            return [str(c) for c in columns if is_label_like(str(c))]
        return [w.strip() for w in wanted.split(",") if w.strip()]
    return [str(w) for w in wanted]


def read_head(path: Path, n_bytes: int = 65536) -> str:
    """The start of a (possibly gzipped) text file, for sniffing."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
        return str(f.read(n_bytes))


def sniff_format(sample: str, sep: str | None = None) -> TableFormat:
    """Separator (given, or sniffed among `SEPARATORS`) and the decimal mark of a CSV sample.

    >>> sniff_format("a,b\\n1.5,2\\n"), sniff_format("a\\tb\\n1\\t2\\n").sep == "\\t"
    (TableFormat(sep=',', decimal='.'), True)
    """
    lines = [ln for ln in sample.splitlines() if ln.strip()][:50]
    if sep is None:
        try:
            sep = csv.Sniffer().sniff("\n".join(lines), delimiters=SEPARATORS).delimiter
        except csv.Error:
            counts = {s: lines[0].count(s) for s in SEPARATORS} if lines else {}
            sep = max(counts, key=lambda s: counts[s]) if counts and max(counts.values()) else ","
    decimal = "."
    if sep != ",":
        cells = [c.strip() for ln in lines[1:] for c in ln.split(sep)]
        comma = sum(bool(re.fullmatch(r"[-+]?\d+,\d+", c)) for c in cells)
        dot = sum(bool(re.fullmatch(r"[-+]?\d*\.\d+([eE][-+]?\d+)?", c)) for c in cells)
        decimal = "," if comma > dot else "."
    return TableFormat(sep, decimal)


def parse_number(cell: str, decimal: str = ".") -> float:
    """A cell as a float with the file's decimal mark (ValueError when it is not a number)."""
    text = cell.strip()
    return float(text.replace(",", ".") if decimal == "," else text)


def format_hint(path: Path, header: Sequence[str], fmt: TableFormat) -> str:
    """Why no numeric column was found, showing the header as it was read."""
    shown = ", ".join(repr(h) for h in list(header)[:8]) + (" …" if len(header) > 8 else "")
    sep = "tab" if fmt.sep == "\t" else repr(fmt.sep)
    return (
        f"{path}: no numeric channel columns found; with separator {sep} the header reads as "
        f"{len(header)} column(s): {shown} (give the separator with --sep)"
    )
