"""Request and response bodies of the clustering-jobs and alarm-episodes APIs.

Kept apart from `service.schemas` (the streaming API). EMTC options default to None, meaning
"the trainer's default" (`model_training.emtc.train.EMTCConfig`), so the defaults live in one
place; the effective configuration comes back in the job's result.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from service.schemas import StreamId

JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
Method = Literal["minirocket", "emtc"]
METHODS: tuple[str, ...] = get_args(Method)
DEFAULT_METHOD: Method = "minirocket"  # the better of the two on UEA (docs/emtc.md)
MINIROCKET_OPTIONS = frozenset({"seed", "length", "n_features"})
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL_STATUSES = ("succeeded", "failed", "cancelled")

Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
# fail_fast: a huge wrong body yields one error, not one per value
Series = Annotated[list[Number], Field(fail_fast=True, min_length=1)]  # one time step: D values
SeriesSteps = Annotated[list[Series], Field(fail_fast=True, min_length=1)]  # T_i steps
SeriesBatch = Annotated[list[SeriesSteps], Field(fail_fast=True, min_length=1)]  # N series


class _Strict(BaseModel):
    """Request bodies: unknown keys and lax coercions refused; an optional key is omitted, not
    null (the documented schema has no nulls: `request_schema`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for k, v in data.items():
                if v is None:
                    raise ValueError(f"'{k}' must not be null; omit it instead")
        return data


class EMTCOptions(_Strict):
    """Method options; omitted ones take the method's defaults (EMTCConfig, docs/emtc.md;
    MiniRocket: 10,000 features). `seed` and `length` apply to both methods, `n_features` to
    MiniRocket only, the others to EMTC only."""

    epochs: int | None = Field(None, ge=1, description="≤ TAD_CLUSTERING_MAX_EPOCHS")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    batch_size: int | None = Field(None, ge=2, le=4096)
    lr: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    hidden: int | None = Field(None, ge=4, le=256, description="view width H")
    ivm_hidden: int | None = Field(None, ge=1, le=64)
    n_views: int | None = Field(None, ge=1, le=4)
    depth: int | None = Field(None, ge=1, le=6)
    epsilon: float | None = Field(None, gt=0, lt=1, allow_inf_nan=False)
    random_mask_ratio: float | None = Field(None, ge=0, lt=1, allow_inf_nan=False)
    tau: float | None = Field(None, gt=0, le=10, allow_inf_nan=False)
    alpha: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    beta: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    warmup_epochs: int | None = Field(None, ge=0, le=10_000)
    contra_ramp_epochs: int | None = Field(None, ge=0, le=10_000)
    stop_patience: int | None = Field(
        None,
        ge=0,
        le=10_000,
        description="stop once the pseudo-labels changed for at most stop_label_change of the "
        "series in this many epochs in a row (0: train all `epochs`)",
    )
    stop_label_change: float | None = Field(None, ge=0, lt=1, allow_inf_nan=False)
    min_epochs: int | None = Field(None, ge=1, le=10_000)
    use_ivm: bool | None = None
    normalize: bool | None = None
    n_features: int | None = Field(
        None, ge=84, le=50_000, description="MiniRocket only: features (multiples of 84)"
    )
    length: int | None = Field(
        None,
        ge=2,
        description="resample every series to this many steps (default: the longest series; "
        "for episodes the longest episode, at most TAD_EPISODE_MAX_POINTS)",
    )

    def trainer_options(self) -> dict[str, Any]:
        """EMTC's options as given (`length` and `n_features` are not EMTC's)."""
        return self.model_dump(exclude_none=True, exclude={"length", "n_features"})

    def foreign_to(self, method: str) -> str | None:
        """The first option given that `method` does not take, or None."""
        given = self.model_dump(exclude_none=True)
        if method == "minirocket":
            return next((k for k in given if k not in MINIROCKET_OPTIONS), None)
        return "n_features" if "n_features" in given else None


class ClusteringJobRequest(_Strict):
    """Either `series` (+ optional `labels`) or `streams` (+ optional `start`, `end`)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"oneOf": [{"required": ["series"]}, {"required": ["streams"]}]},
    )

    series: SeriesBatch | None = Field(
        None, description="N series, each T_i time steps of D numbers; unequal T_i are resampled"
    )
    labels: list[StrictInt | StrictStr] | None = Field(
        None, description="true classes of the N series: ACC/F1/NMI/ARI are then reported"
    )
    streams: list[StreamId] | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="cluster the recorded alarm episodes of these streams instead",
    )
    start: float | None = Field(None, allow_inf_nan=False, description="episodes with onset ≥")
    end: float | None = Field(None, allow_inf_nan=False, description="episodes with onset ≤")
    n_clusters: int = Field(ge=2)
    method: Method = Field(
        DEFAULT_METHOD,
        description="minirocket: random-convolution features + scaling + k-means (seconds, no "
        "torch); emtc: the deep method (minutes, needs torch)",
    )
    options: EMTCOptions = Field(default_factory=lambda: EMTCOptions.model_validate({}))

    @model_validator(mode="after")
    def _one_source(self) -> ClusteringJobRequest:
        if (self.series is None) == (self.streams is None):
            raise ValueError("give exactly one of 'series' (data) or 'streams' (alarm episodes)")
        if self.labels is not None and self.series is None:
            raise ValueError("'labels' go with 'series'")
        if self.series is None:
            return self
        if self.start is not None or self.end is not None:
            raise ValueError("'start' and 'end' go with 'streams'")
        return self


class JobInputOut(BaseModel):
    source: Literal["json", "npz", "ts", "episodes"]
    filename: str | None = None
    n: int = Field(description="series (or episodes) clustered")
    t: int = Field(description="time steps after resampling")
    d: int
    n_clusters: int
    method: Method = DEFAULT_METHOD
    labels: bool = Field(description="the request carried true labels")
    resampled: bool = Field(description="series of unequal length were resampled to t")


class JobProgress(BaseModel):
    epoch: int
    epochs: int
    loss: float | None


class ClusterMetrics(BaseModel):
    acc: float
    f1: float
    nmi: float
    ari: float


class EpisodeRef(BaseModel):
    """Which alarm a clustered episode is; `cluster` is its label."""

    stream_id: str
    alarm_id: int
    onset_ts: float
    offset_ts: float
    n_points: int
    truncated: bool
    cluster: int | None = None


class ClusteringResultOut(BaseModel):
    labels: list[int] = Field(description="cluster of each series, in input order")
    sizes: list[int] = Field(description="series per cluster id 0..k-1")
    silhouette: float | None = Field(
        description="silhouette of the representation (EMTC: cosine; MiniRocket: euclidean on "
        "the scaled features)"
    )
    metrics: ClusterMetrics | None = Field(description="when the request carried labels")
    episodes: list[EpisodeRef] | None = Field(None, description="for episode jobs")
    epochs: int = Field(description="EMTC's epochs trained (0 for MiniRocket)")
    seconds: float
    config: dict[str, Any] = Field(description="the method and the configuration used")


class ClusteringJob(BaseModel):
    job_id: str
    status: JobStatus
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int = Field(description="times a worker started it")
    recoveries: int = Field(description="times it was re-queued after its worker was lost")
    cancel_requested: bool
    input: JobInputOut
    options: dict[str, Any] = Field(description="the options as given")
    progress: JobProgress | None
    result: ClusteringResultOut | None
    error: str | None


class EpisodeOut(BaseModel):
    stream_id: str
    model: str
    model_version: str
    channels: list[str]
    alarm_id: int
    onset_index: int
    onset_ts: float
    offset_index: int
    offset_ts: float
    closed_ts: float
    peak_evidence: float
    top_channels: list[str]
    n_points: int = Field(description="points from onset to offset")
    stored_points: int = Field(description="points kept (resampled past TAD_EPISODE_MAX_POINTS)")
    truncated: bool = Field(description="the onset was older than the kept raw history")
    resampled: bool
    timestamps: list[float] | None = Field(None, description="with ?points=true")
    values: list[list[float]] | None = Field(None, description="with ?points=true, [n][C]")


class EpisodeList(BaseModel):
    stream_id: str
    episodes: list[EpisodeOut] = Field(description="oldest first, the last TAD_EPISODE_BUDGET")


class _NoNullSchema(GenerateJsonSchema):
    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])


def request_schema() -> dict[str, Any]:
    """The JSON request body's schema, self-contained (no `$defs`), for the OpenAPI document."""
    schema = ClusteringJobRequest.model_json_schema(schema_generator=_NoNullSchema)
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return walk({**defs[ref.rsplit("/", 1)[1]], **rest})
            return {k: walk(v) for k, v in node.items() if not (k == "default" and v is None)}
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    out: dict[str, Any] = walk(schema)
    return out


UPLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file", "n_clusters"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": ".npz with X [N, T, D] (and optional y [N]) or a .ts file",
        },
        "n_clusters": {"type": "integer", "minimum": 2},
        "method": {"type": "string", "enum": ["minirocket", "emtc"], "default": "minirocket"},
        "options": {"type": "string", "description": "EMTCOptions as a JSON object"},
    },
}
