"""Request bodies on the hot path: validated in bulk into columns, no pydantic object per point.

`service.schemas` documents the bodies (OpenAPI); here the same shapes are TypedDicts that
pydantic-core validates straight from JSON bytes into plain dicts and lists (≈ 2.7 µs a point
of 38 values, parse included, against ≈ 6 µs for `Point` models), with the same error
locations (`points[3].values[1]`). One rule is checked afterwards, in bulk: each point has
exactly one clock. A binary body (`application/octet-stream`: per point a little-endian float64
timestamp and C float32 values) skips JSON altogether.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NotRequired

import numpy as np
import orjson
from pydantic import ConfigDict, Field, StrictFloat, StrictInt, TypeAdapter, ValidationError
from pydantic import with_config as _with_config
from typing_extensions import TypedDict

from service.errors import BadRequest, InvalidPoint
from service.ingest.json_split import ArrayScan
from service.responses import field_of
from service.schemas import MAX_SEQ, MODEL_NAME_PATTERN, STREAM_ID_PATTERN

BINARY_TYPE = "application/octet-stream"
_Value = StrictFloat | None
_CLOCK = "give exactly one of 'timestamp' (a number) or 'seq' (an integer)"


@_with_config(ConfigDict(extra="forbid"))
class PointWire(TypedDict):
    timestamp: NotRequired[Annotated[StrictFloat, Field(allow_inf_nan=False)] | None]
    seq: NotRequired[Annotated[StrictInt, Field(ge=-MAX_SEQ, le=MAX_SEQ)] | None]
    values: list[_Value] | dict[str, _Value]


@_with_config(ConfigDict(extra="forbid"))
class PointsWire(TypedDict):
    model: NotRequired[Annotated[str, Field(pattern=MODEL_NAME_PATTERN)] | None]
    points: Annotated[list[PointWire], Field(min_length=1)]


@_with_config(ConfigDict(extra="forbid"))
class StreamPointsWire(PointsWire):
    stream_id: Annotated[str, Field(pattern=STREAM_ID_PATTERN)]


@_with_config(ConfigDict(extra="forbid"))
class BatchWire(TypedDict):
    streams: Annotated[list[StreamPointsWire], Field(min_length=1)]


def load_message(text: str | bytes) -> Any:
    """A WebSocket or MQTT message's JSON: orjson first (fast), the stdlib for what it also
    accepts (NaN, Infinity, big integers)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(
            f"message is not valid JSON: {exc}", field="message", kind="malformed"
        ) from None


_POINTS = TypeAdapter(PointsWire)
_BATCH = TypeAdapter(BatchWire)
_POINT_LIST = TypeAdapter(list[PointWire])
_STREAM_LIST = TypeAdapter(list[StreamPointsWire])

# A JSON body above SPLIT_BODY_BYTES is validated in pieces of PIECE_BYTES of whole array
# elements with the loop let in between (service.ingest.json_split: one 8 MiB body validated
# whole held the loop ~0.4 s). Pieces of 128 KiB take ~10 ms each here.
SPLIT_BODY_BYTES = 1 << 20
PIECE_BYTES = 128 << 10
SCAN_BLOCK_BYTES = 1 << 20


@dataclass(slots=True)
class PointColumns:
    """A stream's points as they arrived: times [n] float64, and either the JSON rows (a list
    in channel order or an object by name, per point) or packed binary records."""

    times: np.ndarray
    rows: list[Any] | None = None  # JSON `values` per point
    clocks: list[str] | None = None  # "timestamp" / "seq" per point (JSON), for error fields
    values: np.ndarray | None = None  # [n, C] float64, from a binary body
    binary: bytes | None = None  # a binary body not yet decoded (its model's C is not known)

    def __len__(self) -> int:
        return len(self.times)

    def clock(self, i: int) -> str:
        return "timestamp" if self.clocks is None else self.clocks[i]


def _invalid(exc: ValidationError, prefix: str = "", offset: int = 0) -> InvalidPoint | BadRequest:
    """The first error as a 4xx naming its field (`offset`: index of the first element of a
    piece validated alone, added to the error's leading list index)."""
    err = exc.errors()[0]
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "json_invalid":
        return BadRequest(f"body is not valid JSON: {msg}", field="body", kind="malformed")
    loc = list(err["loc"])
    if offset and loc and isinstance(loc[0], int):
        loc[0] += offset
    field = field_of((*((prefix,) if prefix else ()), *loc))
    return InvalidPoint(msg, field=field or None, kind="malformed")


def columns(points: Sequence[PointWire], field: str) -> PointColumns:
    """Columns of validated points; refuses a point with no clock or with both."""
    times, clocks = [], []
    for i, p in enumerate(points):
        ts, seq = p.get("timestamp"), p.get("seq")
        if (ts is None) == (seq is None) or ("timestamp" in p and "seq" in p):
            raise InvalidPoint(_CLOCK, field=f"{field}[{i}]", kind="malformed")
        times.append(ts if seq is None else seq)
        clocks.append("timestamp" if seq is None else "seq")
    return PointColumns(np.array(times, dtype=np.float64), [p["values"] for p in points], clocks)


def _validate(adapter: TypeAdapter[Any], raw: bytes | str | Any, is_json: bool) -> Any:
    """JSON bytes/text, or an already parsed object, validated by pydantic-core alone (the
    TypeAdapter's Python wrapper costs more than validating one point)."""
    validator = adapter.validator
    try:
        return validator.validate_json(raw) if is_json else validator.validate_python(raw)
    except ValidationError as exc:
        raise _invalid(exc) from None


async def _validate_in_pieces(
    adapter: TypeAdapter[Any], items: TypeAdapter[Any], raw: bytes, key: str
) -> Any:
    """A JSON body validated as `adapter` would, its `key` array piece by piece with the loop
    let in between when the body is large (the same result and the same first error's field
    as one `_validate`; a body the scan does not understand is validated whole)."""
    if len(raw) < SPLIT_BODY_BYTES or b"\\" in raw:
        return _validate(adapter, raw, True)
    scan = ArrayScan(raw)
    for _ in scan.blocks(SCAN_BLOCK_BYTES):
        await asyncio.sleep(0)
    split = scan.split(key.encode(), PIECE_BYTES)
    if split is None:
        return _validate(adapter, raw, True)
    body = _validate(adapter, split.skeleton_with_first, True)  # every other field
    elements: list[Any] = []
    for first, piece in split.pieces:
        await asyncio.sleep(0)
        try:
            elements.extend(items.validator.validate_json(piece))
        except ValidationError as exc:
            raise _invalid(exc, key, first) from None
    body[key] = elements
    return body


def stream_points(
    raw: bytes | str | Any, *, is_json: bool = True
) -> tuple[str | None, PointColumns]:
    """A `PointsRequest` → (model, columns)."""
    return _stream_out(_validate(_POINTS, raw, is_json))


async def stream_points_async(raw: bytes) -> tuple[str | None, PointColumns]:
    """`stream_points` of a JSON body, a large one validated with the loop let in."""
    return _stream_out(await _validate_in_pieces(_POINTS, _POINT_LIST, raw, "points"))


def _stream_out(body: Any) -> tuple[str | None, PointColumns]:
    return body.get("model"), columns(body["points"], "points")


def batch_points(
    raw: bytes | str | Any, *, is_json: bool = True
) -> list[tuple[str, str | None, PointColumns, str]]:
    """A `BatchRequest` → (stream_id, model, columns, field prefix) per stream."""
    return _batch_out(_validate(_BATCH, raw, is_json))


async def batch_points_async(raw: bytes) -> list[tuple[str, str | None, PointColumns, str]]:
    """`batch_points` of a JSON body, a large one validated with the loop let in (and let
    in every 128 streams while their columns are built: 40 ms for 100,000 points)."""
    body = await _validate_in_pieces(_BATCH, _STREAM_LIST, raw, "streams")
    out = []
    for lo in range(0, len(body["streams"]), 128):
        if lo:
            await asyncio.sleep(0)
        out.extend(_batch_out(body, lo, lo + 128))
    return out


def _batch_out(
    body: Any, lo: int = 0, hi: int | None = None
) -> list[tuple[str, str | None, PointColumns, str]]:
    """(stream_id, model, columns, field prefix) of streams lo:hi of a validated body."""
    out = []
    for i, s in enumerate(body["streams"][lo:hi], start=lo):
        field = f"streams[{i}].points"
        out.append((s["stream_id"], s.get("model"), columns(s["points"], field), field))
    return out


def binary_points(body: bytes, n_channels: int, field: str = "body") -> PointColumns:
    """Columns of a binary body for a model of `n_channels` channels."""
    record = np.dtype([("timestamp", "<f8"), ("values", "<f4", (n_channels,))])
    if not body or len(body) % record.itemsize:
        raise InvalidPoint(
            f"binary body of {len(body)} bytes is not a whole number of {record.itemsize}-byte "
            f"points (float64 timestamp + {n_channels} float32 values, little-endian)",
            field=field,
            kind="malformed",
        )
    packed = np.frombuffer(body, record)
    times = packed["timestamp"].astype(np.float64)
    bad = ~np.isfinite(times)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidPoint(
            "timestamp is not a finite number", field=f"points[{i}].timestamp", kind="malformed"
        )
    return PointColumns(times, values=packed["values"].astype(np.float64))
