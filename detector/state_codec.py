"""Stream state ⇄ bytes, so a store (memory, Redis) can persist it exactly.

Layout: magic b"TADS", version byte, 4-byte big-endian header length, a JSON header with the
scalars, then the raw float64 ring buffer [L, C], the float32 ring of recent scores [R]
(version 2 on) and, when an alarm is open, its float64 channel-error sums [C]. Version 1
states (no drift level, baseline or recent scores) still decode. JSON floats round-trip
exactly in Python, so decode(encode(x)) == x.
No pickle: the bytes may come from a store someone else can write to.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np

from detector.alarm import AlarmParams, OpenAlarm
from detector.errors import StateFormatError
from detector.stream import StreamState

MAGIC = b"TADS"
VERSION = 2
_PREFIX = struct.Struct(">4sBI")


def _num(x: float) -> float | str:
    """JSON has no inf/nan: spell them as strings."""
    return x if math.isfinite(x) else repr(x)


def _float(x: Any) -> float:
    return float(x)  # float("inf"), float("nan") parse the strings above


def state_to_dict(st: StreamState) -> dict[str, Any]:
    """Scalars of a state as a JSON-able dict (arrays excluded)."""
    a = st.alarm
    return {
        "stream_id": st.stream_id,
        "n_channels": st.n_channels,
        "window_size": st.window_size,
        "count": st.count,
        "last_ts": _num(st.last_ts),
        "s": st.s,
        "negative_run": st.negative_run,
        "last_zero_index": st.last_zero_index,
        "last_zero_ts": _num(st.last_zero_ts),
        "alarms_opened": st.alarms_opened,
        "params": None
        if st.params is None
        else [
            st.params.alpha,
            st.params.threshold,
            st.params.delta,
            st.params.epsilon,
            st.params.adapt_points,
            st.params.median_points,
            st.params.rebaseline_after_points,
        ],
        "level": st.level,
        "baseline": st.baseline,
        "n_recent": len(st.recent_scores),
        "alarm": None
        if a is None
        else [
            a.alarm_id,
            a.trigger_index,
            a.trigger_ts,
            a.onset_index,
            _num(a.onset_ts),
            a.last_positive_index,
            a.last_positive_ts,
            a.peak,
        ],
    }


def encode_state(st: StreamState) -> bytes:
    """Serialise a stream state to bytes."""
    header = json.dumps(state_to_dict(st), separators=(",", ":")).encode()
    parts = [
        _PREFIX.pack(MAGIC, VERSION, len(header)),
        header,
        st.buffer.astype("<f8").tobytes(),
        st.recent_scores.astype("<f4").tobytes(),
    ]
    if st.alarm is not None:
        parts.append(st.alarm.channel_error_sum.astype("<f8").tobytes())
    return b"".join(parts)


def decode_state(data: bytes) -> StreamState:
    """Parse bytes from `encode_state`; raise StateFormatError on anything else."""
    if len(data) < _PREFIX.size:
        raise StateFormatError(f"state is {len(data)} bytes, shorter than its prefix")
    magic, version, n = _PREFIX.unpack_from(data)
    if magic != MAGIC or version not in (1, VERSION):
        raise StateFormatError(f"unknown state format {magic!r} v{version}")
    try:
        h = json.loads(data[_PREFIX.size : _PREFIX.size + n])
        size, c = int(h["window_size"]), int(h["n_channels"])
        body = memoryview(data)[_PREFIX.size + n :]
        r = int(h.get("n_recent", 0))
        if r < 0 or (version == 1 and r):
            raise StateFormatError(f"n_recent {r} is not valid for version {version}")
        expected = size * c * 8 + r * 4 + (c * 8 if h["alarm"] is not None else 0)
        if len(body) != expected:
            raise StateFormatError(f"state body is {len(body)} bytes, expected {expected}")
        buffer = np.frombuffer(body[: size * c * 8], "<f8").reshape(size, c).astype(np.float64)
        end = size * c * 8 + r * 4
        recent = np.frombuffer(body[size * c * 8 : end], "<f4").astype(np.float32) if r else None
        st = StreamState(
            stream_id=str(h["stream_id"]),
            n_channels=c,
            window_size=size,
            buffer=buffer,
            count=int(h["count"]),
            last_ts=_float(h["last_ts"]),
            s=float(h["s"]),
            negative_run=int(h["negative_run"]),
            last_zero_index=int(h["last_zero_index"]),
            last_zero_ts=_float(h["last_zero_ts"]),
            alarms_opened=int(h["alarms_opened"]),
            params=None if h["params"] is None else AlarmParams(*h["params"]),
            level=float(h.get("level", 0.0)),
            baseline=float(h.get("baseline", 0.0)),
            recent_scores=recent,  # type: ignore[arg-type]  # None: a fresh ring (version 1)
        )
        if h["alarm"] is not None:
            v = h["alarm"]
            sums = np.frombuffer(body[end:], "<f8").astype(np.float64)
            st.alarm = OpenAlarm(
                int(v[0]),
                int(v[1]),
                float(v[2]),
                int(v[3]),
                _float(v[4]),
                int(v[5]),
                float(v[6]),
                float(v[7]),
                sums,
            )
    except StateFormatError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise StateFormatError(f"corrupt state header: {exc}") from exc
    return st
