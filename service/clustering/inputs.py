"""From a request to the [N, T, D] array a job trains on: limits, checks, JSON arrays.

Uploaded files (`.npz`, `.ts`) are read in `service.clustering.uploads`, then checked here.

Every refusal names the field: 413 for a limit (with the TAD_CLUSTERING_* variable), 422 for a
malformed value. An `.npz` is read with `allow_pickle=False`, and each array's header (shape,
dtype) is checked before its data is read, so neither a pickle nor a small archive that would
decompress to a huge array gets through. These functions block: callers run them in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from model_training.emtc import memory
from model_training.emtc.config import EMTCConfig
from model_training.emtc.memory import MINIROCKET_FEATURES, MINIROCKET_MIN_T
from model_training.emtc.ts_format import to_fixed_length
from service.clustering.schemas import (
    DEFAULT_METHOD,
    ClusteringJobRequest,
    EMTCOptions,
)
from service.errors import BadRequest, InvalidPoint, TooLarge
from service.responses import field_of
from service.settings import Settings


@dataclass(frozen=True)
class UploadLimits:
    max_n: int
    max_t: int
    max_d: int
    max_values: int
    max_epochs: int
    max_memory_mb: int = 4096

    @classmethod
    def from_settings(cls, s: Settings) -> UploadLimits:
        return cls(
            s.clustering_max_n,
            s.clustering_max_t,
            s.clustering_max_d,
            s.clustering_max_values,
            s.clustering_max_epochs,
            s.clustering_max_memory_mb,
        )


@dataclass
class JobInput:
    """What a job trains on, and how it came to be."""

    x: np.ndarray  # [N, T, D] float32, finite
    labels: np.ndarray | None  # [N] str
    n_clusters: int
    options: EMTCOptions
    source: str  # json | npz | ts | episodes
    resampled: bool
    filename: str | None = None
    episodes: list[dict[str, Any]] = field(default_factory=list)  # EpisodeRef dicts
    method: str = DEFAULT_METHOD

    def summary(self) -> dict[str, Any]:
        n, t, d = self.x.shape
        return {
            "source": self.source,
            "filename": self.filename,
            "n": n,
            "t": t,
            "d": d,
            "n_clusters": self.n_clusters,
            "method": self.method,
            "labels": self.labels is not None,
            "resampled": self.resampled,
        }


def invalid_value(message: str, field: str, kind: str = "invalid") -> InvalidPoint:
    return InvalidPoint(message, field=field, kind=kind)


def parse_request(raw: bytes, limits: UploadLimits) -> ClusteringJobRequest:
    """JSON body → validated request (series not yet converted)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", field="body", kind="malformed") from None
    if isinstance(obj, dict):
        precheck_series(obj.get("series"), limits)
    try:
        return ClusteringJobRequest.model_validate(obj)
    except ValidationError as exc:
        raise from_validation(exc) from None


def from_validation(exc: ValidationError, prefix: str = "") -> InvalidPoint:
    first = exc.errors()[0]
    loc = first.get("loc", ())
    if loc and loc[0] == "labels":  # drop the union-member tags: labels[3].int → labels[3]
        loc = tuple(p for p in loc if p not in ("int", "str"))
    where = field_of(loc)
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return InvalidPoint(msg, field=(prefix + where) or prefix.rstrip(".") or None, kind="malformed")


def precheck_series(series: Any, limits: UploadLimits) -> None:
    """Cheap size checks before the per-value validation."""
    if not isinstance(series, list):
        return
    if len(series) > limits.max_n:
        raise TooLarge(
            f"{len(series)} series; the limit is {limits.max_n} (TAD_CLUSTERING_MAX_N)",
            field="series",
        )
    for i, s in enumerate(series):
        if isinstance(s, list) and len(s) > limits.max_t:
            raise TooLarge(
                f"{len(s)} time steps; the limit is {limits.max_t} (TAD_CLUSTERING_MAX_T)",
                field=f"series[{i}]",
            )


def stack_series(
    series: list[np.ndarray], length: int | None, limits: UploadLimits, name: str
) -> tuple[np.ndarray, bool]:
    """Series [T_i, D] → [N, T, D] float32: stacked if equal, else linearly resampled."""
    n = len(series)
    if n == 0:
        raise invalid_value("no series (N = 0)", name)
    if n > limits.max_n:
        raise TooLarge(
            f"{n} series; the limit is {limits.max_n} (TAD_CLUSTERING_MAX_N)", field=name
        )
    d = series[0].shape[1] if series[0].ndim == 2 else 0
    if d == 0:
        raise invalid_value("D = 0: every time step needs at least one value", name)
    for i, s in enumerate(series):
        if len(s) < 2:
            raise invalid_value(
                f"series {i} has {len(s)} step(s): need at least 2 time steps", name
            )
        if s.shape[1] != d:
            raise invalid_value(f"{s.shape[1]} values per step, but the first series has {d}", name)
        if len(s) > limits.max_t:
            raise TooLarge(
                f"series {i} has {len(s)} steps; the limit is {limits.max_t} "
                "(TAD_CLUSTERING_MAX_T)",
                field=name,
            )
    if d > limits.max_d:
        raise TooLarge(f"D = {d}; the limit is {limits.max_d} (TAD_CLUSTERING_MAX_D)", field=name)
    t = length or max(len(s) for s in series)
    if t > limits.max_t:
        raise TooLarge(f"T = {t}; the limit is {limits.max_t} (TAD_CLUSTERING_MAX_T)", field=name)
    if t < 2:
        raise invalid_value("need at least 2 time steps per series", name)
    if n * t * d > limits.max_values:
        raise TooLarge(
            f"N·T·D = {n * t * d}; the limit is {limits.max_values} (TAD_CLUSTERING_MAX_VALUES)",
            field=name,
        )
    if all(len(s) == t for s in series):
        x, resampled = np.stack(series), False
    else:
        x, resampled = to_fixed_length(series, t), True
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    if not np.all(np.isfinite(x32)):
        bad = np.argwhere(~np.isfinite(x32))[0].tolist()
        raise invalid_value(
            "not a finite 32-bit number (NaN, infinity or beyond ±3.4e38)", f"{name}[{bad[0]}]"
        )
    return x32, resampled


def check_common(
    shape: tuple[int, ...],
    n_clusters: int,
    labels: np.ndarray | None,
    opts: EMTCOptions,
    limits: UploadLimits,
    label_field: str = "labels",
    method: str = DEFAULT_METHOD,
) -> None:
    n, t, d = shape
    foreign = opts.foreign_to(method)
    if foreign is not None:
        other = "emtc" if method == "minirocket" else "minirocket"
        raise invalid_value(
            f"'{foreign}' is an option of method '{other}', not of '{method}' "
            f'(set "method": "{other}" to use it)',
            f"options.{foreign}",
        )
    if method == "minirocket" and t < MINIROCKET_MIN_T:
        raise invalid_value(
            f"method 'minirocket' needs series of at least {MINIROCKET_MIN_T} steps, got T = {t} "
            "(resample with options.length)",
            "options.length" if opts.length else "series",
        )
    if n_clusters > n:
        raise invalid_value(f"n_clusters = {n_clusters} is more than the {n} series", "n_clusters")
    if labels is not None and len(labels) != n:
        raise invalid_value(f"{len(labels)} labels for {n} series", label_field)
    if opts.epochs is not None and opts.epochs > limits.max_epochs:
        raise invalid_value(
            f"epochs = {opts.epochs}; the limit is {limits.max_epochs} (TAD_CLUSTERING_MAX_EPOCHS)",
            "options.epochs",
        )
    check_memory(n, t, d, opts, limits, method)


def check_memory(
    n: int, t: int, d: int, opts: EMTCOptions, limits: UploadLimits, method: str = DEFAULT_METHOD
) -> None:
    """Refuse a job whose estimated peak memory is over TAD_CLUSTERING_MAX_MEMORY_MB."""
    if method == "minirocket":
        n_features = opts.n_features or MINIROCKET_FEATURES
        need_mb = memory.minirocket_peak_bytes(n, t, d, n_features) / (1 << 20)
        drivers = f"N={n}, T={t}, D={d}, n_features={n_features}"
        advice = "lower options.n_features, send fewer series or shorten them (options.length)"
    else:
        cfg = EMTCConfig(**opts.trainer_options())
        need_mb = memory.peak_bytes(n, t, d, cfg) / (1 << 20)
        drivers = ", ".join(memory.main_contributors(n, t, d, cfg))
        advice = (
            "lower options.batch_size, options.hidden, options.depth or options.n_views, "
            "shorten the series (options.length), or set options.use_ivm = false"
        )
    if need_mb > limits.max_memory_mb:
        raise invalid_value(
            f"this job would need about {need_mb:,.0f} MB, over TAD_CLUSTERING_MAX_MEMORY_MB = "
            f"{limits.max_memory_mb} MB (from {drivers}); {advice}",
            "options",
            "too_much_memory",
        )


def from_json(req: ClusteringJobRequest, limits: UploadLimits) -> JobInput:
    """A validated JSON request with `series` → JobInput."""
    assert req.series is not None
    arrays = []
    for i, s in enumerate(req.series):
        widths = sorted({len(step) for step in s})
        if len(widths) != 1:
            raise invalid_value(
                f"time steps have different numbers of values {widths}", f"series[{i}]"
            )
        arrays.append(np.asarray(s, dtype=np.float64))
    x, resampled = stack_series(arrays, req.options.length, limits, "series")
    labels = None if req.labels is None else np.asarray([str(v) for v in req.labels])
    check_common(x.shape, req.n_clusters, labels, req.options, limits, method=req.method)
    return JobInput(x, labels, req.n_clusters, req.options, "json", resampled, method=req.method)
