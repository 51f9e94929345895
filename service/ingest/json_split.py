"""Split one array of a large JSON body into pieces of whole elements, without parsing it.

Why: validating an 8 MiB points body (100,000 points) is one pydantic-core call of ~0.4 s on
this project's 2-core reference machine (orjson alone ~0.27 s), and C code of that kind holds
the GIL: neither `to_thread` nor a switch interval lets the event loop in, so `/healthz`
waited 211 ms (issue 25). Validating the body's big array piece by piece, with the loop let in
between, bounds each stall by one piece. Finding the pieces is a vectorised scan (numpy):
quotes give the string mask, brackets outside strings give the depth, and the commas at the
array's own depth are the element boundaries.

A body this scan does not understand — a backslash anywhere (escaped quotes would need a
stateful scan), the key missing or present twice at the top level, the value not an array —
gives None and the caller validates it whole, as before: nothing is refused here.

>>> s = split_array(b'{"model": "m", "points": [{"a": 1}, {"a": [2, "]"]}, {"a": 3}]}',
...                 b"points", piece_bytes=1)
>>> s.skeleton_with_first
b'{"model": "m", "points": [{"a": 1}]}'
>>> [(first, raw) for first, raw in s.pieces]
[(0, b'[{"a": 1}]'), (1, b'[ {"a": [2, "]"]}]'), (2, b'[ {"a": 3}]')]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

_QUOTE, _BACKSLASH, _COMMA = ord('"'), b"\\", ord(",")
_OPEN = np.zeros(256, np.int8)
_OPEN[[ord("{"), ord("[")]] = 1
_OPEN[[ord("}"), ord("]")]] = -1
_SPACE = b" \t\r\n"


@dataclass(frozen=True, slots=True)
class SplitArray:
    """`skeleton_with_first`: the body with its array cut down to the first element (validating
    it checks every other field); `pieces`: (index of the piece's first element, the piece as
    a JSON array of whole elements), in order, covering every element once."""

    skeleton_with_first: bytes
    pieces: list[tuple[int, bytes]]


class ArrayScan:
    """String mask and bracket depth of a body, computed block by block (`blocks` yields after
    each, so an async caller can let the loop in), then `split` finds one array's pieces."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.data = np.frombuffer(raw, np.uint8)  # [n]
        self.in_string = np.zeros(len(raw), bool)  # [n] opening quote and inside a string
        self.depth = np.zeros(len(raw), np.int32)  # [n] bracket depth after each byte

    def blocks(self, block_bytes: int) -> Iterator[None]:
        quotes, depth = 0, 0
        for lo in range(0, len(self.raw), block_bytes):
            part = self.data[lo : lo + block_bytes]
            inside = ((np.cumsum(part == _QUOTE) + quotes) & 1).astype(bool)
            self.in_string[lo : lo + block_bytes] = inside
            steps = np.where(inside, 0, _OPEN[part])
            self.depth[lo : lo + block_bytes] = np.cumsum(steps, dtype=np.int32) + depth
            quotes += int((part == _QUOTE).sum())
            depth = int(self.depth[lo + len(part) - 1])
            yield

    def split(self, key: bytes, piece_bytes: int) -> SplitArray | None:
        """The top-level object's array under `key`, in pieces of about `piece_bytes` each
        (call after `blocks` is exhausted)."""
        raw, data, depth = self.raw, self.data, self.depth
        if _BACKSLASH in raw:
            return None
        start = _value_start(raw, key, self.in_string, depth)
        if start is None or raw[start : start + 1] != b"[":
            return None
        closing = np.flatnonzero((depth[start:] == 1) & (data[start:] == ord("]")))
        if not len(closing):
            return None
        end = start + int(closing[0])  # the array's "]"
        inner = slice(start + 1, end)
        commas = start + 1 + np.flatnonzero((data[inner] == _COMMA) & (depth[inner] == 2))
        if not raw[start + 1 : end].strip(_SPACE):
            return None  # an empty array: the whole-body validation says what is wrong
        bounds = [start, *commas.tolist(), end]  # element i: between bounds[i] and bounds[i+1]
        pieces, first, size = [], 0, 0
        for i in range(len(bounds) - 1):
            size += bounds[i + 1] - bounds[i]
            if size >= piece_bytes or i == len(bounds) - 2:
                pieces.append((first, b"[" + raw[bounds[first] + 1 : bounds[i + 1]] + b"]"))
                first, size = i + 1, 0
        skeleton = raw[: start + 1] + raw[start + 1 : bounds[1]] + b"]" + raw[end + 1 :]
        return SplitArray(skeleton, pieces)


def split_array(raw: bytes, key: bytes, piece_bytes: int) -> SplitArray | None:
    """The top-level object's array under `key`, in pieces of about `piece_bytes` each, in one
    go (`ArrayScan` does the same a block at a time)."""
    scan = ArrayScan(raw)
    for _ in scan.blocks(max(len(raw), 1)):
        pass
    return scan.split(key, piece_bytes)


def _value_start(raw: bytes, key: bytes, in_string: np.ndarray, depth: np.ndarray) -> int | None:
    """Offset of the first non-blank byte of `key`'s value in the top-level object; None when
    the body is not an object or holds the key other than exactly once at its top level."""
    if raw.lstrip(_SPACE)[:1] != b"{":
        return None
    quoted, found, at = b'"' + key + b'"', None, raw.find(b'"' + key + b'"')
    while at >= 0:
        # a key of the top-level object: its opening quote is outside any string before it
        # and sits at depth 1
        if depth[at] == 1 and (at == 0 or not in_string[at - 1]):
            if found is not None:
                return None
            found = at
        at = raw.find(quoted, at + 1)
    if found is None:
        return None
    rest = raw[found + len(quoted) :].lstrip(_SPACE)
    if rest[:1] != b":":
        return None
    value = rest[1:].lstrip(_SPACE)
    return len(raw) - len(value)
