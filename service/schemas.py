"""Request and response bodies of the HTTP and WebSocket APIs (also the OpenAPI schema).

Results are column-wise (one list per quantity) because that is how the detector produces them
and how clients plot them; a warm-up point has `score` and `p_value` null.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
    model_validator,
)
from pydantic.dataclasses import dataclass as pydantic_dataclass

from detector.alarm import AlarmEvent
from detector.stream import SCORE_HISTORY

MAX_SEQ = 2**53  # sequence numbers are compared as float64: exact up to here
STREAM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"

StreamId = Annotated[str, Field(pattern=STREAM_ID_PATTERN, examples=["pump-7"])]
ModelName = Annotated[str, Field(pattern=MODEL_NAME_PATTERN, examples=["demo"])]
Value = StrictFloat | None  # strict: accepts JSON numbers (ints too), not strings or booleans


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Point(_Strict):
    """One reading: a timestamp (seconds) or a sequence number, and every channel's value.

    `values` is a list in the model's channel order or an object keyed by channel name; null
    (or NaN/Infinity) is a non-finite value, handled by the service's non-finite policy.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["timestamp"]}, {"required": ["seq"]}]},
    )

    # Optional in Python, documented as plain number/integer: the oneOf above requires one
    timestamp: Annotated[
        Annotated[StrictFloat, Field(allow_inf_nan=False)] | None,
        WithJsonSchema({"type": "number", "description": "seconds (e.g. Unix time)"}),
    ] = None
    seq: Annotated[
        Annotated[StrictInt, Field(ge=-MAX_SEQ, le=MAX_SEQ)] | None,
        WithJsonSchema(
            {
                "type": "integer",
                "minimum": -MAX_SEQ,
                "maximum": MAX_SEQ,
                "description": "sequence number",
            }
        ),
    ] = None
    values: (
        Annotated[list[Value], Field(min_length=1)]
        | Annotated[dict[str, Value], Field(min_length=1)]
    )

    @model_validator(mode="after")
    def _one_clock(self) -> Point:
        given = {"timestamp", "seq"} & self.model_fields_set
        if len(given) != 1 or (self.timestamp is None and self.seq is None):
            raise ValueError("give exactly one of 'timestamp' (a number) or 'seq' (an integer)")
        return self

    @property
    def time(self) -> float:
        return float(self.timestamp if self.timestamp is not None else self.seq)  # type: ignore[arg-type]


class PointsRequest(_Strict):
    """Points of one stream, oldest first; `model` binds a stream created by this request."""

    model: ModelName | None = None
    points: list[Point] = Field(min_length=1)


class StreamPoints(PointsRequest):
    stream_id: StreamId


class BatchRequest(_Strict):
    """Points of many streams, scored with one model call per model."""

    streams: list[StreamPoints] = Field(min_length=1)


@pydantic_dataclass(frozen=True)
class AlarmEventOut(AlarmEvent):
    """An alarm opened or closed. Onset is the backtracked start t_a*, offset t_b* (on close).

    The fields are the core's `detector.alarm.AlarmEvent` (derived, not restated) plus the model
    that raised it."""

    model: str
    model_version: str


class PointsResult(BaseModel):
    """Per input point a status; per accepted point (in order) one entry in every column."""

    stream_id: str
    model: str
    model_version: str
    status: list[Literal["accepted", "duplicate"]]
    accepted: int
    duplicates: int
    held: int = Field(description="non-finite values replaced by the last value (hold policy)")
    index: list[int]
    timestamp: list[float]
    warmup: list[bool]
    score: list[float | None]
    p_value: list[float | None]
    evidence: list[float]
    accumulated: list[float]
    alarm: list[bool]
    events: list[AlarmEventOut]


class BatchResult(BaseModel):
    results: list[PointsResult]


class StreamCreate(_Strict):
    """Create (or reconfigure) a stream; α and h override the bundle's calibrated values, or
    `false_alarms_per_10k` sets h from the stream's own false-alarm budget."""

    model: ModelName | None = None
    alpha: float | None = Field(None, gt=0, lt=1, strict=True)
    threshold: float | None = Field(None, gt=0, allow_inf_nan=False, strict=True)
    false_alarms_per_10k: float | None = Field(
        None,
        strict=True,
        gt=0,
        le=10_000,
        allow_inf_nan=False,
        description="expected false alarms per 10,000 nominal points: h is recomputed from the "
        "bundle's validation period for this budget (not with `threshold`)",
    )

    @model_validator(mode="after")
    def _one_threshold(self) -> StreamCreate:
        if self.threshold is not None and self.false_alarms_per_10k is not None:
            raise ValueError("give threshold or false_alarms_per_10k, not both")
        return self


class Rebaseline(_Strict):
    """Take the stream's recent behaviour as its new normal."""

    points: int = Field(
        500,
        ge=1,
        le=SCORE_HISTORY,
        description=f"how many of the stream's most recent points define the new normal "
        f"(at most {SCORE_HISTORY}, the scores a stream keeps)",
    )


class OpenAlarmOut(BaseModel):
    stream_id: str
    model: str
    alarm_id: int
    trigger_index: int
    trigger_ts: float
    onset_index: int
    onset_ts: float
    peak_evidence: float
    top_channels: list[str]


class ModelSwitch(BaseModel):
    model: str = Field(description="the model the stream moved to")
    previous: str = Field(description="the model it left")
    from_index: int = Field(description="the first point scored by the new model")
    at: float = Field(description="when (unix seconds)")


class StreamInfo(BaseModel):
    stream_id: str
    model: str
    n_channels: int
    count: int = Field(description="points accepted so far")
    last_timestamp: float | None
    accumulated: float
    alpha: float
    threshold: float
    alarms_opened: int
    adapt_points: int = Field(description="drift adaptation horizon in points (0: off)")
    median_points: int = Field(
        1, description="the evidence reads the running median of this many scores (1: raw)"
    )
    rebaseline_after_points: int = Field(
        0, description="an alarm this long closes and the stream re-baselines itself (0: never)"
    )
    drift_level: float = Field(description="the stream's drift level of log scores")
    baseline_shift: float = Field(
        description="log shift of the scores set by the last re-baseline (0: none)"
    )
    open_alarm: OpenAlarmOut | None
    model_history: list[ModelSwitch] = Field(
        default_factory=list, description="the stream's model switches, oldest first"
    )


class StreamList(BaseModel):
    streams: list[str]
    next_cursor: str | None = Field(
        None, description="pass as ?cursor= for the next page; null on the last page"
    )


class HistoryPoint(BaseModel):
    index: int = Field(description="position of the point in its stream (0 = first accepted)")
    timestamp: float
    values: list[float] = Field(description="channel values in the model's channel order")


class PointHistory(BaseModel):
    """A page of a stream's recorded history (TAD_HISTORY_POINTS points are kept)."""

    stream_id: str
    model: str
    channels: list[str]
    points: list[HistoryPoint]
    next_cursor: str | None = Field(
        None, description="pass as ?cursor= for the next page; null on the last page"
    )
    retained_from_index: int | None = Field(
        None, description="index of the oldest point still kept (older ones fell off)"
    )


class AlarmHistory(BaseModel):
    stream_id: str
    events: list[AlarmEventOut] = Field(description="oldest first, capped per stream")


class OpenAlarms(BaseModel):
    alarms: list[OpenAlarmOut]
    next_cursor: str | None = Field(
        None, description="pass as ?cursor= for the next page; null on the last page"
    )


class ModelInfo(BaseModel):
    name: str
    version: str
    created_at: str
    content_hash: str
    active: bool
    channels: list[str]
    window_size: int
    alpha: float
    threshold: float
    false_alarms_per_10k: float | None = Field(
        None, description="the false-alarm budget h was set for (None: an older bundle)"
    )
    directory: str = Field(description="the bundle's directory name under TAD_MODEL_DIR")


class RefusedBundle(BaseModel):
    directory: str = Field(description="the bundle's directory name under TAD_MODEL_DIR")
    reason: str


class ModelList(BaseModel):
    models: list[ModelInfo]
    refused: list[RefusedBundle]


class ReloadResult(ModelList):
    changed: list[str] = Field(description="'name: old → new' for every swapped version")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    models: int = 0
    store: Literal["memory", "redis"] | None = None
    store_ok: bool | None = None


class ErrorDetail(BaseModel):
    type: str = Field(examples=["out_of_order"])
    message: str
    field: str | None = Field(None, examples=["points[3].timestamp"])
    stream_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
