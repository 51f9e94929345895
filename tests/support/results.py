"""The service's answers against the core's: columns and alarm events, point by point.

Events are compared on the fields that identify an alarm (`EVENT_KEYS`, a subset of the core's
`detector.alarm.EVENT_FIELDS`), whether they come as the API's JSON or as the core's
`AlarmEvent`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detector.alarm import AlarmEvent
from detector.bundle import load_bundle
from detector.runtime import online_detector
from detector.stream import StreamResults

COLUMNS = ("index", "timestamp", "warmup", "score", "p_value", "evidence", "accumulated", "alarm")
EVENT_KEYS = (
    "kind",
    "alarm_id",
    "at_index",
    "onset_index",
    "offset_index",
    "peak_evidence",
    "top_channels",
)


def event_fields(e: Mapping[str, Any] | AlarmEvent) -> dict[str, Any]:
    """The comparable fields of a service event (JSON) or a core `AlarmEvent`."""
    d = e.as_json() if isinstance(e, AlarmEvent) else e
    return {k: d[k] for k in EVENT_KEYS}


def reference(
    bundle: Path, values: np.ndarray, chunks: Iterable[int] | None = None, stream_id: str = "s"
) -> dict[str, Any]:
    """What `OnlineDetector.step` (the evaluator's core) gives on the same data, as columns."""
    b = load_bundle(bundle)
    det = online_detector(b, "cpu")  # the graphs the service scores with
    st = det.new_state(stream_id)
    ts = np.arange(len(values), dtype=np.float64)
    bounds = [0, *list(chunks or []), len(values)]
    parts: list[StreamResults] = [
        det.step(st, values[lo:hi], ts[lo:hi])
        for lo, hi in zip(bounds, bounds[1:], strict=False)
        if hi > lo
    ]
    out: dict[str, Any] = {c: np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS}
    out["events"] = [e for p in parts for e in p.events]
    return out


def collect(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Concatenate service results (JSON) column-wise; null → NaN."""
    rs = list(results)
    out: dict[str, Any] = {}
    for c in COLUMNS:
        vals = [v for r in rs for v in r[c]]
        out[c] = np.array([np.nan if v is None else v for v in vals])
    out["events"] = [e for r in rs for e in r["events"]]
    return out


def assert_same_results(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    """Exactly equal columns (NaN = NaN) and the same alarm events."""
    for c in COLUMNS:
        np.testing.assert_array_equal(
            np.asarray(got[c], np.float64), np.asarray(want[c], np.float64), err_msg=c
        )
    assert len(got["events"]) == len(want["events"])
    for g, w in zip(got["events"], want["events"], strict=True):
        assert event_fields(g) == event_fields(w), (g, w)


def assert_replies_match(replies: Iterable[Mapping[str, Any]], want: Mapping[str, Any]) -> set[int]:
    """Every scored point in `replies` equals the uninterrupted reference at its index, and its
    events are the reference's events at those indexes. Returns the indexes scored.

    Scores may differ in the last float32 bits (≈ 1e-9 relative), and so the p-values, evidence
    and accumulated evidence computed from them: after a restart the embedding cache is rebuilt
    from the raw ring buffer in other batch shapes than it was rolled in."""
    seen: set[int] = set()
    want_events = [event_fields(e) for e in want["events"]]
    for r in replies:
        idx = np.asarray(r["index"], dtype=np.int64)
        assert not seen.intersection(idx.tolist()), f"points scored twice: {idx}"
        seen.update(idx.tolist())
        for c in COLUMNS:
            got = np.array([np.nan if v is None else v for v in r[c]], dtype=np.float64)
            want_c = np.asarray(want[c], np.float64)[idx]
            if c in ("score", "p_value", "evidence", "accumulated"):
                np.testing.assert_allclose(got, want_c, rtol=1e-6, atol=1e-12, err_msg=c)
            else:
                np.testing.assert_array_equal(got, want_c, err_msg=c)
        expected = [e for e in want_events if e["at_index"] in set(idx.tolist())]
        assert [event_fields(e) for e in r["events"]] == expected
    return seen


def assert_history(history: Sequence[Mapping[str, Any]], want: Mapping[str, Any]) -> None:
    """The stored alarm history is exactly the uninterrupted run's events, in order."""
    assert [event_fields(e) for e in history] == [event_fields(e) for e in want["events"]]
