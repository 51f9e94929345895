"""Evidence → alarm: the accumulator, the alarm rules, and the alarm event (its one definition).

Per point, after the score's evidence β_t (detector.online):
  accumulated s_t = 0 if β_{t−1..t−δ} were all negative, else max(s_{t−1} + β_t, 0)
  alarm   while s_t > h; opened at the trigger t_a with onset t_a* = last t < t_a with s_t = 0;
          closed when s falls back to ≤ h, with offset t_b* = last t in (t_a, t_b] with β_t > 0.

`AlarmEvent` is the alarm event every edge shows: the API's JSON (`AlarmEventOut` derives from
it, `AlarmEvent.as_json` writes it) and the tests' expectations (`EVENT_FIELDS`) take its fields
from here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from detector.stream import StreamState


@dataclass(frozen=True, slots=True)
class AlarmParams:
    """α (significance level), h (alarm threshold on s), δ (reset run), ε (p-value floor), the
    drift adaptation horizon in points (0: off; detector.adaptation), the points of the score's
    running median the evidence reads (1: the raw score; detector.smoothing; the calibration
    scores are medians the same way) and the alarm length after which the stream re-baselines
    itself (0: never; detector.online)."""

    alpha: float
    threshold: float
    delta: int = 5
    epsilon: float = 1e-4
    adapt_points: int = 0
    median_points: int = 1
    rebaseline_after_points: int = 0


def accumulate(s_prev: float, negative_run: int, beta: float, delta: int) -> tuple[float, int]:
    """One accumulator step; returns (s_t, run of negative evidences ending at t).

    >>> accumulate(0.0, 0, 1.5, 5)
    (1.5, 0)
    >>> accumulate(1.5, 5, 2.0, 5)  # five negatives before t: reset, β_t not added
    (0.0, 0)
    """
    s = 0.0 if negative_run >= delta else max(s_prev + beta, 0.0)
    return s, (negative_run + 1 if beta < 0 else 0)


@dataclass(slots=True, eq=False)
class OpenAlarm:
    """Bookkeeping of the alarm in progress."""

    alarm_id: int
    trigger_index: int
    trigger_ts: float
    onset_index: int
    onset_ts: float
    last_positive_index: int  # last t in (t_a, now] with β_t > 0; t_a if none yet
    last_positive_ts: float
    peak: float  # peak accumulated evidence s
    channel_error_sum: np.ndarray  # [C] float64 squared errors summed over the alarm


CloseReason = Literal["evidence", "rebaseline", "operator", "model_switch"]


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """An alarm opened (offset is None) or closed, with the channels that contribute most and,
    when closed, why: the evidence fell back to ≤ h, the stream re-baselined itself after a long
    alarm (AlarmParams.rebaseline_after_points), an operator re-baselined it, or it moved to
    another model."""

    kind: Literal["opened", "closed"]
    stream_id: str
    alarm_id: int
    at_index: int
    at_ts: float
    trigger_index: int
    trigger_ts: float
    onset_index: int
    onset_ts: float
    offset_index: int | None
    offset_ts: float | None
    peak_evidence: float
    top_channels: tuple[str, ...]
    closed_by: CloseReason | None  # None while open

    def as_json(self) -> dict[str, Any]:
        """The fields as plain JSON values (int, float, str, None, list), in field order.

        >>> e = AlarmEvent("closed", "s1", 1, 9, 9.0, 5, 5.0, 3, 3.0, 8, 8.0, 12.5, ("a", "b"),
        ...                "evidence")
        >>> e.as_json()["top_channels"], e.as_json()["offset_ts"]
        (['a', 'b'], 8.0)
        """
        return {
            "kind": self.kind,
            "stream_id": self.stream_id,
            "alarm_id": int(self.alarm_id),
            "at_index": int(self.at_index),
            "at_ts": float(self.at_ts),
            "trigger_index": int(self.trigger_index),
            "trigger_ts": float(self.trigger_ts),
            "onset_index": int(self.onset_index),
            "onset_ts": float(self.onset_ts),
            "offset_index": None if self.offset_index is None else int(self.offset_index),
            "offset_ts": None if self.offset_ts is None else float(self.offset_ts),
            "peak_evidence": float(self.peak_evidence),
            "top_channels": list(self.top_channels),
            "closed_by": self.closed_by,
        }


EVENT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AlarmEvent))


def top_channels(names: Sequence[str], channel_errors: np.ndarray, k: int) -> tuple[str, ...]:
    """The k channels with the largest error (ties: the earlier channel), largest first.

    >>> top_channels(("a", "b", "c"), np.array([1.0, 3.0, 1.0]), 2)
    ('b', 'a')
    """
    order = np.argsort(-channel_errors, kind="stable")[: min(k, len(channel_errors))]
    return tuple(names[int(j)] for j in order)


def alarm_rules(
    st: StreamState,
    t: int,
    ts: float,
    beta: float,
    err: np.ndarray | None,
    params: AlarmParams,
    events: list[AlarmEvent],
    names: Sequence[str],
    top_k: int,
) -> bool:
    """Open, extend or close the stream's alarm for point t (its s already updated); returns
    the alarm flag. `err`: the point's per-channel contributions, None when it has none."""
    above = st.s > params.threshold
    a = st.alarm
    if a is None and above and err is not None:
        onset_index, onset_ts = st.last_zero_index, st.last_zero_ts
        if math.isnan(onset_ts):  # s was never 0 before: onset is the trigger itself
            onset_index, onset_ts = t, ts
        a = OpenAlarm(st.alarms_opened + 1, t, ts, onset_index, onset_ts, t, ts, st.s, err.copy())
        st.alarm, st.alarms_opened = a, st.alarms_opened + 1
        events.append(
            alarm_event("opened", st.stream_id, a, t, ts, top_channels(names, err, top_k))
        )
    elif a is not None and above and err is not None:
        a.peak = max(a.peak, st.s)
        a.channel_error_sum += err
        if beta > 0:
            a.last_positive_index, a.last_positive_ts = t, ts
    elif a is not None:
        events.append(close_alarm(st, t, ts, names, top_k))
    return bool(above)


def close_alarm(
    st: StreamState,
    t: int,
    ts: float,
    names: Sequence[str],
    top_k: int,
    reason: CloseReason = "evidence",
) -> AlarmEvent:
    """Close the stream's open alarm at point t; its event ranks the alarm's summed errors."""
    a = st.alarm
    if a is None:
        raise ValueError(f"stream {st.stream_id!r} has no open alarm to close")
    st.alarm = None
    top = top_channels(names, a.channel_error_sum, top_k)
    return alarm_event("closed", st.stream_id, a, t, ts, top, reason)


def alarm_event(
    kind: Literal["opened", "closed"],
    stream_id: str,
    a: OpenAlarm,
    t: int,
    ts: float,
    top: tuple[str, ...],
    reason: CloseReason | None = None,
) -> AlarmEvent:
    """The event of alarm `a` opening or closing at point t (`top`: its ranked channels;
    `reason`: why it closed)."""
    closed = kind == "closed"
    return AlarmEvent(
        kind=kind,
        stream_id=stream_id,
        alarm_id=a.alarm_id,
        at_index=t,
        at_ts=ts,
        trigger_index=a.trigger_index,
        trigger_ts=a.trigger_ts,
        onset_index=a.onset_index,
        onset_ts=a.onset_ts,
        offset_index=a.last_positive_index if closed else None,
        offset_ts=a.last_positive_ts if closed else None,
        peak_evidence=float(a.peak),
        top_channels=top,
        closed_by=reason if closed else None,
    )
