"""What an operator sees of a detector: alarms, not points.

Point F1 rewards a detector that paints long stretches; an on-call engineer counts pages.
Each alarm is one span [onset, offset] (the backtracked interval the service reports) with
the index where it was raised (its trigger):

* alarm precision — share of alarms whose span overlaps a labelled segment;
* segment recall — share of labelled segments overlapped by at least one alarm;
* false alarms per 10,000 nominal points — alarms overlapping no segment, per 10k label-0 points;
* median delay — per detected segment, trigger of its first overlapping alarm minus the
  segment start (0 when the alarm was raised before the segment began);
* alarm fraction — share of all points inside some alarm span.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from model_training.metrics import segments


@dataclass(frozen=True)
class AlarmReport:
    alarms: int
    alarm_precision: float | None  # None: no alarm raised
    segments: int
    segments_detected: int
    segment_recall: float | None  # None: no labelled segment
    false_alarms_per_10k: float
    median_delay: float | None
    alarm_fraction: float

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def alarm_report(labels: np.ndarray, spans: np.ndarray) -> AlarmReport:
    """Operator metrics of alarm spans [K, ≥3] (onset, trigger, offset, …) against 0/1 labels.

    >>> y = np.array([0, 0, 1, 1, 0, 0, 0, 0, 1, 0])
    >>> spans = np.array([[1, 3, 3, 3], [5, 6, 6, 6]])  # one hit (raised 1 point late), one miss
    >>> r = alarm_report(y, spans)
    >>> r.alarm_precision, r.segment_recall, r.median_delay, r.alarm_fraction
    (0.5, 0.5, 1.0, 0.5)
    """
    y = np.asarray(labels) != 0
    n = len(y)
    segs = segments(y)  # [S, 2] start, end-exclusive
    spans = np.asarray(spans, np.int64).reshape(-1, max(np.asarray(spans).shape[-1], 3))
    on, trig, off = spans[:, 0], spans[:, 1], spans[:, 2]
    # overlap[k, j]: alarm k's [on, off] meets segment j's [start, end − 1]
    overlap = (on[:, None] < segs[None, :, 1]) & (off[:, None] >= segs[None, :, 0])
    true_alarm = overlap.any(axis=1)
    detected = overlap.any(axis=0)
    delays = []
    for j in np.flatnonzero(detected):
        first = int(np.min(trig[overlap[:, j]]))
        delays.append(max(first - int(segs[j, 0]), 0))
    covered = np.zeros(n + 1, np.int64)
    np.add.at(covered, on, 1)
    np.add.at(covered, np.minimum(off + 1, n), -1)
    inside = np.cumsum(covered[:n]) > 0
    nominal = int((~y).sum())
    return AlarmReport(
        alarms=len(spans),
        alarm_precision=float(true_alarm.mean()) if len(spans) else None,
        segments=len(segs),
        segments_detected=int(detected.sum()),
        segment_recall=float(detected.mean()) if len(segs) else None,
        false_alarms_per_10k=float((~true_alarm).sum() / max(nominal, 1) * 1e4),
        median_delay=float(np.median(delays)) if delays else None,
        alarm_fraction=float(inside.mean()) if n else 0.0,
    )
