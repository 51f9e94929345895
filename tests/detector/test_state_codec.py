"""Stream state survives bytes exactly: a stream resumed from bytes continues identically."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.alarm import AlarmParams
from detector.errors import StateFormatError
from detector.state_codec import decode_state, encode_state
from tests.detector.test_online import detector


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.2), min_size=1, max_size=80),
    st.integers(0, 80),
    st.booleans(),
)
def test_resume_from_bytes_equals_uninterrupted(scores: list[float], cut: int, own: bool) -> None:
    det = detector(threshold=1.5)
    params = AlarmParams(0.1, 2.0, 3, 1e-3, adapt_points=7) if own else None  # drift level too
    values = np.sqrt(np.repeat(np.asarray(scores)[:, None], 2, axis=1))
    ts = np.arange(len(values), dtype=float) * 0.5
    cut = min(cut, len(values))
    whole = det.step(det.new_state("w", params), values, ts)
    state = det.new_state("w", params)
    first = det.step(state, values[:cut], ts[:cut])
    state = decode_state(encode_state(state))
    assert encode_state(decode_state(encode_state(state))) == encode_state(state)
    second = det.step(state, values[cut:], ts[cut:])
    assert np.array_equal(
        np.concatenate([first.accumulated, second.accumulated]), whole.accumulated
    )
    assert first.events + second.events == whole.events


def test_corrupt_state_is_refused() -> None:
    det = detector()
    state = det.new_state("s")
    det.step(state, np.ones((6, 2)) * 2, np.arange(6.0))
    blob = encode_state(state)
    with pytest.raises(StateFormatError):
        decode_state(blob[:-3])
    with pytest.raises(StateFormatError):
        decode_state(b"XXXX" + blob[4:])
    with pytest.raises(StateFormatError):
        decode_state(blob[:9] + b"x" + blob[10:])


def test_version_1_states_still_decode() -> None:
    """A state an older service wrote to Redis (no drift level, baseline or recent scores)."""
    import json
    import struct

    det = detector()
    state = det.new_state("old")
    det.step(state, np.ones((6, 2)) * 0.5, np.arange(6.0))
    blob = encode_state(state)
    _, _, n = struct.unpack_from(">4sBI", blob)
    header = json.loads(blob[9 : 9 + n])
    for key in ("level", "baseline", "n_recent"):
        header.pop(key)
    head = json.dumps(header).encode()
    ring = state.buffer.astype("<f8").tobytes()
    old = struct.pack(">4sBI", b"TADS", 1, len(head)) + head + ring
    st = decode_state(old)
    assert st.count == 6 and st.level == 0.0 and st.baseline == 0.0
    assert np.isnan(st.recent_scores).all() and np.array_equal(st.buffer, state.buffer)
    det.step(st, np.ones((2, 2)) * 0.5, np.array([6.0, 7.0]))  # and it scores on
