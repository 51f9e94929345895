"""Stream state survives bytes exactly: a stream resumed from bytes continues identically."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.errors import StateFormatError
from detector.online import AlarmParams
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
