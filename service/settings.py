"""Service configuration: one `Settings` read from `TAD_*` environment variables.

Built by `load_settings()` inside `create_app`/the CLI, never at import, so tests and tools can
import the service without an environment. A bad value stops start-up with a message that names
the environment variable, not a pydantic traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "TAD_"
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")


class SettingsError(ValueError):
    """Configuration is invalid; the message names the offending variable(s)."""


class Settings(BaseSettings):
    """Everything the service reads from its environment (see deploy docs for the table)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    model_dir: Path = Field(Path("models"), description="directory of bundle directories")
    redis_url: str | None = Field(None, description="redis://… to keep stream state in Redis")
    redis_prefix: str = Field("tad:", min_length=1, max_length=64)
    store_timeout_s: float = Field(2.0, gt=0, le=60)
    metrics_top_streams: int = Field(
        100,
        ge=0,
        description="/metrics: per-stream series for streams in alarm plus this many with the "
        "most evidence (0: none; the aggregates always cover every stream)",
    )
    metrics_max_alarm_streams: int = Field(
        1000,
        ge=0,
        description="/metrics: at most this many streams in alarm get their own series (those "
        "with the most evidence; an alarm storm stays one scrape; tad_alarms_open counts all)",
    )
    model_rescan_s: float = Field(
        0.0,
        ge=0,
        le=86_400,
        description="rescan the model directory this often for new versions (e.g. written by "
        "a `tad worker`); 0: only on POST /v1/models/reload or SIGHUP",
    )
    reload_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="a model reload taking longer answers 503"
    )
    docs: bool = Field(
        True,
        description="serve /docs, /redoc and /openapi.json (open even with TAD_API_KEYS: they "
        "describe the API, they hold no data); false removes them",
    )
    commit_retries: int = Field(16, ge=1, le=1000)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="comma-separated keys; empty means no auth"
    )
    nonfinite_policy: Literal["reject", "hold"] = "reject"
    max_body_bytes: int = Field(8 << 20, ge=1024)
    max_ws_message_bytes: int = Field(1 << 20, ge=1024)
    max_points_per_request: int = Field(100_000, ge=1)
    # one request's streams are one atomic Redis commit: 80,000 of them held Redis and the event
    # loop for seconds (issue 25), so a request names at most this many streams
    max_streams_per_request: int = Field(1000, ge=1, le=100_000)
    duplicate_window: int = Field(64, ge=1, le=100_000)
    alarm_history: int = Field(1000, ge=1, le=1_000_000)
    auto_create_streams: bool = True
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    onnx_threads: int = Field(1, ge=1, le=256)
    scoring_threads: int = Field(1, ge=1, le=256)
    incremental: bool = Field(
        True, description="score with the bundle's step graph and per-stream embedding caches"
    )
    batch_window_ms: float = Field(
        0.0,
        ge=0,
        le=100,
        description="micro-batching: an idle scorer waits this long for more requests (0: "
        "none; requests arriving while a batch is scored always form the next batch)",
    )
    batch_max_points: int = Field(
        4096, ge=1, description="micro-batching: score at once when this many points wait"
    )
    stream_cache_size: int = Field(
        100_000,
        ge=0,
        description="streams kept decoded in process memory in front of Redis (the memory "
        "store keeps all)",
    )
    embedding_idle_s: float = Field(
        300.0,
        ge=0,
        description="a stream silent this long gives back its model embedding cache (~12 KB); "
        "its next point rebuilds it (0: never)",
    )
    ws_impl: Literal["auto", "websockets", "websockets-sansio", "wsproto"] = Field(
        "websockets-sansio", description="uvicorn's WebSocket implementation (bench/perf.py)"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # EMTC clustering jobs (docs/clustering.md)
    clustering_workers: int = Field(
        1, ge=0, le=16, description="jobs run at once, each in its own process; 0: accept only"
    )
    clustering_torch_threads: int = Field(1, ge=1, le=256)
    clustering_max_n: int = Field(5000, ge=2)
    clustering_max_t: int = Field(2048, ge=2)
    clustering_max_d: int = Field(64, ge=1)
    clustering_max_values: int = Field(4_000_000, ge=4, description="limit on N·T·D")
    clustering_max_bytes: int = Field(32 << 20, ge=1024, description="request body limit")
    clustering_max_queue: int = Field(8, ge=1, le=10_000)
    clustering_max_epochs: int = Field(200, ge=1)
    clustering_max_memory_mb: int = Field(
        4096,
        ge=256,
        description="memory cap of one job's process: estimated before it starts (422 when "
        "over), then enforced by the OS (RLIMIT_DATA) while it runs",
    )
    clustering_job_timeout_s: float = Field(3600.0, gt=0)
    clustering_parse_in_process_bytes: int = Field(
        256 << 10, ge=0, description="a larger input is parsed in its own capped process"
    )
    clustering_parse_timeout_s: float = Field(60.0, gt=0)
    clustering_lease_s: float = Field(30.0, ge=0.5, le=3600)
    clustering_max_recoveries: int = Field(1, ge=0, le=100)
    clustering_keep_s: int = Field(7 * 86400, ge=60, description="finished jobs are kept")
    clustering_keep_jobs: int = Field(1000, ge=1, description="finished jobs kept in memory")
    # alarm episodes kept for fault-family clustering; 0 history points: not recorded
    episode_history_points: int = Field(2048, ge=0, le=1_000_000)
    episode_max_points: int = Field(1024, ge=2, le=1_000_000)
    episode_budget: int = Field(50, ge=1, le=100_000)
    # recorded history: the last N accepted points of every stream, exported by
    # GET /v1/streams/{id}/points (docs/history.md: ~0.35 KB a point at 38 channels); 0: off
    history_points: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="accepted points kept per stream for export (0: only what alarm episodes need)",
    )

    # per-client request budget and browser access (docs/reliability.md)
    rate_limit_per_s: float = Field(
        0.0,
        ge=0,
        description="requests (and WebSocket messages) a second per API key, or per client "
        "address without a valid key; 0: no limit",
    )
    rate_limit_burst: int = Field(
        100, ge=1, description="requests a client may send at once on top of the rate"
    )
    redis_max_connections: int = Field(
        1024,
        ge=1,
        le=100_000,
        description="most connections one process opens to Redis (one per request in flight); "
        "beyond it a request gets 503 Retry-After",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated origins (https://host[:port]) a browser may call the API "
        "from; empty: no CORS headers",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [k.strip() for k in v.split(",") if k.strip()]
        return v

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [o.strip() for o in v.split(",") if o.strip()]
        for origin in v if isinstance(v, list) else []:
            if origin != "*" and not _ORIGIN.fullmatch(str(origin)):
                raise ValueError(f"{origin!r} is not an origin like https://host[:port] (or *)")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: str | None) -> str | None:
        if v is None or v.strip() == "":
            return None
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @field_validator("model_dir")
    @classmethod
    def _model_dir_exists(cls, v: Path) -> Path:
        if not v.is_dir():
            raise ValueError(f"{v} is not a directory")
        return v

    def key_entries(self) -> list[str]:
        """The API key entries as given (`SECRET` or `ROLE[@TENANT]:SECRET`, service.auth)."""
        return [k.get_secret_value() for k in self.api_keys]


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (overrides win); raise SettingsError naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ENV_PREFIX + str(err["loc"][0]).upper() if err["loc"] else ENV_PREFIX
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {msg}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
