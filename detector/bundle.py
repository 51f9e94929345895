"""Model bundles: `manifest.json` + `model.onnx` + `calibration.npz`, validated on load.

A bundle is what the trainer exports and the service loads. Its content hash covers the
manifest and the sha256 of every file, so a truncated or edited bundle is refused before it
can score anything. Arrays live in npz (loaded with allow_pickle=False), never pickle.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.alarm import AlarmParams
from detector.calibration import Calibration
from detector.errors import BundleError
from detector.score import SCORE_KINDS, ChannelScore
from detector.smoothing import MAX_MEDIAN_POINTS

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
CALIBRATION_FILE = "calibration.npz"
STEP_FILE = "model_step.onnx"  # optional incremental graph: (point, cache) → (recon, embedding)
EMBED_FILE = "model_embed.onnx"  # with it: point → embedding, the step graph's first layer
_ARRAYS = ("scale_min", "scale_range", "sorted_losses")
_SCORE_ARRAYS = ("error_weight", "deviation_weight", "center", "basis")  # any kind but mse
_OPTIONAL_ARRAYS = (
    "validation_scores",  # time-ordered, for the nominal replay check
    "context",  # [C] 1.0 for a context (flag/constant) channel; absent: all sensors
    "context_cap",  # [1] the most context channels add to a score
)
# size caps, checked before a file is read: a 2 GiB sparse manifest took 19 s and 4 GB to refuse
MAX_FILE_BYTES = {
    "manifest.json": 8 << 20,
    "calibration.npz": 256 << 20,
    "model.onnx": 512 << 20,
    "model_step.onnx": 512 << 20,
    "model_embed.onnx": 512 << 20,
}
MAX_REPLAY_ALARM_FRACTION = 0.1  # a bundle alarming on more of its own validation is refused


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the manifest without its own hash field."""
    body = {k: v for k, v in manifest.items() if k != "content_hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded, validated bundle."""

    path: Path
    manifest: dict[str, Any]
    calibration: Calibration

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def step_model_path(self) -> Path | None:
        """The incremental step graph, when the bundle has one."""
        return self.path / STEP_FILE if STEP_FILE in self.manifest["files"] else None

    @property
    def embed_model_path(self) -> Path | None:
        """The embedding graph (comes with the step graph in newer bundles)."""
        return self.path / EMBED_FILE if EMBED_FILE in self.manifest["files"] else None

    @property
    def embedding_dim(self) -> int | None:
        step = self.manifest.get("step")
        return int(step["embedding_dim"]) if isinstance(step, dict) else None

    @property
    def content_hash(self) -> str:
        return str(self.manifest["content_hash"])


def write_bundle(
    out: Path,
    manifest: dict[str, Any],
    arrays: dict[str, np.ndarray],
    model_bytes: bytes,
    step_bytes: bytes | None = None,
    embed_bytes: bytes | None = None,
) -> Path:
    """Write the files, then the manifest with file hashes and the content hash last."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(model_bytes)
    files = [MODEL_FILE, CALIBRATION_FILE]
    if step_bytes is not None:
        (out / STEP_FILE).write_bytes(step_bytes)
        files.append(STEP_FILE)
    if embed_bytes is not None:
        (out / EMBED_FILE).write_bytes(embed_bytes)
        files.append(EMBED_FILE)
    names = (*_ARRAYS, *_SCORE_ARRAYS, *_OPTIONAL_ARRAYS)
    kept = {k: np.asarray(arrays[k], np.float64) for k in names if k in arrays}
    np.savez(out / CALIBRATION_FILE, **kept)  # type: ignore[arg-type]
    manifest = dict(manifest, schema_version=SCHEMA_VERSION)
    manifest["files"] = {f: sha256_file(out / f) for f in files}
    manifest["content_hash"] = content_hash(manifest)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return out


def _check_size(path: Path, name: str) -> None:
    """Refuse a bundle file over its cap before reading a byte of it."""
    try:
        size = (path / name).stat().st_size
    except FileNotFoundError:
        return  # reported where the file is needed
    cap = MAX_FILE_BYTES[name]
    if size > cap:
        raise BundleError(path, f"{name} is {size} bytes; the limit is {cap} bytes")


def _require(path: Path, manifest: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in manifest:
        raise BundleError(path, f"manifest lacks {key!r}")
    if not isinstance(manifest[key], kind):
        raise BundleError(path, f"manifest {key!r} has type {type(manifest[key]).__name__}")
    return manifest[key]


def load_bundle(path: Path) -> Bundle:
    """Read and validate a bundle directory; raise BundleError naming what is wrong."""
    path = Path(path)
    if (path / MANIFEST).exists() and not (path / MANIFEST).is_file():
        raise BundleError(path, f"{MANIFEST} is not a regular file")
    _check_size(path, MANIFEST)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError as exc:
        raise BundleError(path, f"no {MANIFEST}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(path, f"{MANIFEST} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(path, f"{MANIFEST} is not an object")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(path, f"schema_version {version!r}, this service reads {SCHEMA_VERSION}")
    if manifest.get("content_hash") != content_hash(manifest):
        raise BundleError(path, "content_hash does not match the manifest (edited or corrupt)")
    files = _require(path, manifest, "files", dict)
    optional = [f for f in (STEP_FILE, EMBED_FILE) if f in files]
    for name in (MODEL_FILE, CALIBRATION_FILE, *optional):
        if not (path / name).is_file():
            raise BundleError(path, f"missing {name}")
        _check_size(path, name)
        if files.get(name) != sha256_file(path / name):
            raise BundleError(path, f"{name} does not match its sha256 (truncated or replaced)")
    names = _require(path, manifest, "channel_names", list)
    size = _require(path, manifest, "window_size", int)
    clip = _require(path, manifest, "clip", (int, float))
    alarm = _require(path, manifest, "alarm", dict)
    _require(path, manifest, "name", str)
    _require(path, manifest, "version", str)
    score_section = manifest.get("score") or {}
    score_kind = score_section.get("kind", "mse") if isinstance(score_section, dict) else None
    if score_kind not in SCORE_KINDS:
        raise BundleError(path, f"score kind {score_kind!r} is not one of {SCORE_KINDS}")
    wanted = _ARRAYS + (_SCORE_ARRAYS if score_kind != "mse" else ())
    try:
        with np.load(path / CALIBRATION_FILE, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k], np.float64) for k in wanted}
            replay = (
                np.asarray(z["validation_scores"], np.float64)
                if "validation_scores" in z.files
                else None
            )
            if score_kind != "mse" and "context" in z.files:
                arrays["context"] = np.asarray(z["context"], np.float64)
                arrays["context_cap"] = np.asarray(z["context_cap"], np.float64)
        params = AlarmParams(
            float(alarm["alpha"]),
            float(alarm["threshold"]),
            int(alarm["delta"]),
            float(alarm["epsilon"]),
            int(alarm.get("adapt_points", 0)),
            int(alarm.get("median_points", 1)),  # older bundles: the raw score
            int(alarm.get("rebaseline_after_points", 0)),  # older bundles: never
        )
        min_alarm_points = float(alarm.get("min_alarm_points", 3.0))
        max_alarm_points = float(alarm.get("max_alarm_points", 0.0))  # older bundles: no cap
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise BundleError(path, f"bad calibration: {exc}") from exc
    c = len(names)
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != c:
        raise BundleError(path, "channel_names must be distinct, non-empty strings")
    if arrays["scale_min"].shape != (c,) or arrays["scale_range"].shape != (c,):
        raise BundleError(path, f"scaler shape does not match {c} channels")
    for key, values in arrays.items():
        if not np.isfinite(values).all():
            raise BundleError(path, f"{key} holds NaN or infinite values")
    if not (arrays["scale_range"] > 0).all():
        raise BundleError(path, "scale_range must be positive")
    losses = arrays["sorted_losses"]
    if losses.ndim != 1 or len(losses) == 0 or (np.diff(losses) < 0).any():
        raise BundleError(path, "sorted_losses must be a non-empty ascending vector")
    if losses[-1] == losses[0]:
        raise BundleError(
            path,
            f"degenerate calibration: all {len(losses)} calibration scores equal {losses[0]:g}",
        )
    channel_score = None
    if score_kind != "mse":
        basis = arrays["basis"]
        if any(arrays[k].shape != (c,) for k in _SCORE_ARRAYS[:3]) or (
            basis.ndim != 2 or basis.shape[1] != c
        ):
            raise BundleError(path, f"score arrays do not match {c} channels")
        if (arrays["error_weight"] < 0).any() or (arrays["deviation_weight"] < 0).any():
            raise BundleError(path, "score weights must be ≥ 0")
        context, cap = None, np.inf
        if "context" in arrays:
            flags, caps = arrays["context"], arrays["context_cap"]
            if flags.shape != (c,) or not np.isin(flags, (0.0, 1.0)).all() or caps.shape != (1,):
                raise BundleError(path, f"context must be {c} values of 0 or 1 and one cap")
            if not 0 < flags.sum() < c or not caps[0] >= 0:
                raise BundleError(path, "context must mark some but not all channels, cap ≥ 0")
            context, cap = flags.astype(bool), float(caps[0])
        channel_score = ChannelScore(
            score_kind,
            arrays["error_weight"],
            arrays["deviation_weight"],
            arrays["center"],
            basis,
            context,
            cap,
        )
    if not (
        0 < params.alpha < 1
        and params.delta >= 1
        and 0 < params.epsilon < np.inf
        and params.adapt_points >= 0
        and 1 <= params.median_points <= MAX_MEDIAN_POINTS
        and params.rebaseline_after_points >= 0
    ):
        raise BundleError(path, f"alarm parameters out of range: {params}")
    if not 0 <= params.threshold < np.inf:  # 0: every positive evidence alarms (a tiny model)
        raise BundleError(path, f"alarm threshold {params.threshold} is not a number ≥ 0")
    if not 0 < clip < np.inf or size < 1:
        raise BundleError(path, f"clip {clip} and window_size {size} must be positive")
    if replay is not None:
        _check_replay(path, replay, losses, params)
    cal = Calibration(
        tuple(str(n) for n in names),
        arrays["scale_min"],
        arrays["scale_range"],
        float(clip),
        losses,
        params,
        window_size=size,
        channel_score=channel_score,
        validation_scores=replay,
        min_alarm_points=min_alarm_points,
        max_alarm_points=max_alarm_points,
    )
    return Bundle(path, manifest, cal)


def _check_replay(path: Path, replay: np.ndarray, losses: np.ndarray, params: AlarmParams) -> None:
    """The bundle's own nominal validation period, replayed, must not be mostly in alarm."""
    from detector.offline import replay_alarm_fraction
    from detector.pvalue import TailReference

    if replay.ndim != 1 or not np.isfinite(replay).all() or len(replay) != len(losses):
        raise BundleError(path, "validation_scores must be finite and as many as sorted_losses")
    frac = replay_alarm_fraction(replay, TailReference.fit(losses), params)
    if frac > MAX_REPLAY_ALARM_FRACTION:
        raise BundleError(
            path,
            f"degenerate calibration: replaying its nominal validation period spends {frac:.0%} "
            f"of it in alarm (h={params.threshold:g}; at most {MAX_REPLAY_ALARM_FRACTION:.0%})",
        )
