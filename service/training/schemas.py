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
    median_points: int | None = Field(
        None, ge=1, le=512, strict=True, description="running median the evidence reads (1: raw)"
    )
    rebaseline_after_points: int | None = Field(
        None,
        ge=0,
        le=10**9,
        strict=True,
        description="an alarm this long re-baselines its stream (0: never)",
    )


class PromotionCheck(BaseModel):
    """The label-free check a new version must pass to replace the running one
    (service.training.promotion): its false alarms on the most recent nominal history, held
    back from training."""

    model_config = ConfigDict(extra="forbid")

    max_false_alarms_per_10k: float = Field(5.0, gt=0, le=10_000, allow_inf_nan=False)
    holdout_fraction: float = Field(0.2, ge=0.05, le=0.5, allow_inf_nan=False)


class RefitPlan(BaseModel):
    """Retrain the model from the same streams' last `window_s` every `every_s` (the model
    declares it in its manifest; service.training.refit)."""

    model_config = ConfigDict(extra="forbid")

    every_s: float = Field(ge=1, le=366 * 86400, allow_inf_nan=False)
    window_s: float = Field(ge=1, le=366 * 86400, allow_inf_nan=False)


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
    promote_if: PromotionCheck | None = Field(
        None,
        description="load the new version only if it passes this check against the running "
        "one; otherwise it is discarded and the job says why (default for refits)",
    )
    refit: RefitPlan | None = Field(
        None, description="the model refits itself on this schedule, each refit checked"
    )


class TableOptions(BaseModel):
    """How to read an uploaded table: `tad train --kind table`'s options (model_training.data
    .table.load_table), read in the job's process."""

    model_config = ConfigDict(extra="forbid")

    timestamp_column: str | None = Field("auto", max_length=256)
    label_column: str | list[str] | None = Field("auto")
    channels: list[str] | None = Field(None, max_length=10_000)
    drop_channels: list[str] = Field(default_factory=list, max_length=10_000)
    train_until: str | float | None = None
    train_fraction: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False)
    sep: str | None = Field(None, min_length=1, max_length=4)


class TrainingUploadCreate(BaseModel):
    """The `spec` form field of `POST /v1/training/uploads` (the table is `file`)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName
    options: TrainingOptions = Field(default_factory=lambda: TrainingOptions.model_validate({}))
    table: TableOptions = Field(default_factory=lambda: TableOptions.model_validate({}))
    promote_if: PromotionCheck | None = None


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
        None,
        description="the bundle written (model, version, bundle, epochs, threshold), and with a "
        "promotion check: promoted, and the check's figures and reason",
    )
    promote_if: dict[str, Any] | None = None
    refit: dict[str, Any] | None = Field(None, description="the schedule the model declares")
    error: str | None = None
