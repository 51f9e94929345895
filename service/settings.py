"""Service configuration: one `Settings` read from `TAD_*` environment variables.

Built by `load_settings()` inside `create_app`/the CLI, never at import, so tests and tools can
import the service without an environment. A bad value stops start-up with a message that names
the environment variable, not a pydantic traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
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
    refit_check_s: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="how often to look for models whose declared refit is due (0: never)",
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
    clustering_max_bytes: int = Field(
        32 << 20,
        ge=1024,
        description="request body limit of clustering jobs and of training uploads",
    )
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
    # MQTT subscriber (docs/mqtt.md): off unless TAD_MQTT_URL is set
    mqtt_url: str | None = Field(
        None, description="mqtt://host[:port] or mqtts://… of a broker to take readings from"
    )
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_ca_file: Path | None = Field(None, description="mqtts: CA bundle of the broker")
    mqtt_cert_file: Path | None = Field(None, description="mqtts: client certificate")
    mqtt_key_file: Path | None = Field(None, description="mqtts: client certificate's key")
    mqtt_topics: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["tad/readings/{stream_id}"],
        description="comma-separated topic filters; a level {stream_id} (or other {name}s "
        "joined by TAD_MQTT_STREAM_ID) names the stream, {model} the model of a new stream",
    )
    mqtt_stream_id: str = Field(
        "{stream_id}", description="stream id template over the filters' named levels"
    )
    mqtt_client_id: str = Field(
        "",
        max_length=64,
        description="MQTT client id (default tad-<hostname>): keep it "
        "stable, the broker keeps the session's unacknowledged messages under it",
    )
    mqtt_shared_group: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_-]*$",
        description="subscribe as $share/<group>/… so "
        "replicas split the messages (empty: every replica gets every message)",
    )
    mqtt_qos: int = Field(1, ge=0, le=1, description="subscription QoS (1: at least once)")
    mqtt_max_inflight: int = Field(
        64, ge=1, le=65_535, description="unacknowledged messages the broker may send at once"
    )
    mqtt_session_expiry_s: int = Field(
        86_400, ge=0, description="how long the broker keeps the session while disconnected"
    )
    mqtt_keepalive_s: int = Field(30, ge=5, le=3600)
    mqtt_alarm_topic: str = Field(
        "tad/alarms/{stream_id}",
        description="alarm events (the API's JSON) are published here (QoS 1); `off`: none",
    )
    mqtt_state_topic: str = Field(
        "", description="retained current alarm state per stream, e.g. tad/state/{stream_id}"
    )
    mqtt_score_topic: str = Field(
        "", description="per-message results (scores, evidence), e.g. tad/scores/{stream_id}"
    )
    mqtt_score_interval_s: float = Field(
        1.0, ge=0, description="at most one score message per stream this often (0: each)"
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

    @field_validator("mqtt_topics", mode="before")
    @classmethod
    def _split_topics(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [t.strip() for t in v.split(",") if t.strip()]
        return v or ["tad/readings/{stream_id}"]

    @field_validator("mqtt_stream_id", "mqtt_alarm_topic", mode="before")
    @classmethod
    def _template_default(cls, v: Any, info: ValidationInfo) -> Any:
        """Empty means the default: docker-compose cannot write a `{…}` default in `${X:-…}`."""
        if v == "":
            return cls.model_fields[str(info.field_name)].default
        return v

    @field_validator(
        "mqtt_username",
        "mqtt_password",
        "mqtt_ca_file",
        "mqtt_cert_file",
        "mqtt_key_file",
        mode="before",
    )
    @classmethod
    def _empty_unset(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, v: str | None) -> str | None:
        if v is None or v.strip() == "":
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://host[:port] or mqtts://host[:port]")
        if parts.username or parts.password:
            raise ValueError("put the user in TAD_MQTT_USERNAME and TAD_MQTT_PASSWORD")
        return v

    @model_validator(mode="after")
    def _mqtt_consistent(self) -> Settings:
        from service.mqtt.topics import TopicConfigError, TopicMap

        try:
            TopicMap.parse(self.mqtt_topics, self.mqtt_stream_id)
        except TopicConfigError as exc:
            raise ValueError(f"TAD_MQTT_TOPICS / TAD_MQTT_STREAM_ID: {exc}") from None
        if self.mqtt_url and self.mqtt_max_inflight > self.duplicate_window:
            raise ValueError(
                f"TAD_MQTT_MAX_INFLIGHT ({self.mqtt_max_inflight}) must not exceed "
                f"TAD_DUPLICATE_WINDOW ({self.duplicate_window}): messages the broker delivers "
                "again after a crash are recognised as duplicates only within that window"
            )
        return self

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
            msg = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:  # a rule between variables: its message names them
                problems.append(msg)
                continue
            name = ENV_PREFIX + str(err["loc"][0]).upper()
            problems.append(f"{name}: {msg}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
