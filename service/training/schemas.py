"""Request and answer bodies of `POST /v1/training/jobs` and `GET /v1/training/jobs/{id}`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas import ModelName, StreamId

MAX_TRAINING_STREAMS = 100


class TrainingOptions(BaseModel):
    """`tad train`'s options; an option left out takes `tad train`'s default."""

    model_config = ConfigDict(extra="forbid")

    epochs: int | None = Field(None, ge=1, le=500, strict=True)
    patience: int | None = Field(None, ge=1, le=100, strict=True)
    d_model: int | None = Field(None, ge=4, le=1024, strict=True)
    expansion: int | None = Field(None, ge=1, le=16, strict=True)
    batch_size: int | None = Field(None, ge=2, le=65536, strict=True)
    lr: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    val_fraction: float | None = Field(None, ge=0.05, le=0.5, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=2**31 - 1, strict=True)
    score: Literal["hybrid", "pca", "distance", "auto"] | None = None
    false_alarms_per_10k: float | None = Field(None, gt=0, le=10_000, allow_inf_nan=False)


class TrainingJobCreate(BaseModel):
    """Train a new version of `model` on the recorded history of `streams` (the points with
    `from` ≤ timestamp < `to`; recorded alarm spans left out unless `include_alarms`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: ModelName
    streams: list[StreamId] = Field(min_length=1, max_length=MAX_TRAINING_STREAMS)
    from_ts: float | None = Field(None, alias="from", allow_inf_nan=False)
    to_ts: float | None = Field(None, alias="to", allow_inf_nan=False)
    include_alarms: bool = Field(False, strict=True)
    options: TrainingOptions = Field(default_factory=lambda: TrainingOptions.model_validate({}))


class TrainingJob(BaseModel):
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    recoveries: int
    cancel_requested: bool
    model: str
    version: str
    input: dict[str, Any] = Field(description="streams, points used, points left out")
    options: dict[str, Any]
    progress: dict[str, Any] | None = Field(
        None, description="epoch, epochs, the validation loss and the stopping rule's fault AUC"
    )
    result: dict[str, Any] | None = Field(
        None, description="the bundle written (model, version, bundle, epochs, threshold)"
    )
    error: str | None = None
