"""Export a trained model as a bundle, refusing one whose ONNX graph disagrees with torch."""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from detector.bundle import MAX_REPLAY_ALARM_FRACTION, load_bundle, write_bundle
from detector.runtime import OnnxReconstructor
from detector.score import ChannelScore

if TYPE_CHECKING:
    from model_training.model import CCMTAD
    from model_training.train import TrainConfig, TrainResult

OPSET = 17
PARITY_TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """The exported graph does not reproduce the torch model."""


def onnx_bytes(model: CCMTAD) -> bytes:
    """The last-point model as ONNX with a dynamic batch axis: window [B, L, C] → [B, C]."""
    cfg = model.cfg
    model = model.eval().cpu()
    dummy = torch.zeros(2, cfg.window_size, cfg.n_channels)
    buf = io.BytesIO()
    torch.onnx.export(
        model,
        (dummy,),
        buf,  # type: ignore[arg-type]  # a BytesIO is accepted at run time
        input_names=["window"],
        output_names=["reconstruction"],
        dynamic_axes={"window": {0: "batch"}, "reconstruction": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    return buf.getvalue()


class _StepGraph(torch.nn.Module):
    """`CCMTAD.step` as a module, so it exports as its own graph."""

    def __init__(self, model: CCMTAD) -> None:
        super().__init__()
        self.model = model

    def forward(self, point: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.step(point, cache)


def step_onnx_bytes(model: CCMTAD) -> bytes:
    """The incremental graph: point [B, C] + cache [B, L − 1, d] → recon [B, C], z [B, d]."""
    cfg = model.cfg
    graph = _StepGraph(model.eval().cpu())
    dummy = (torch.zeros(2, cfg.n_channels), torch.zeros(2, cfg.window_size - 1, cfg.d_model))
    buf = io.BytesIO()
    torch.onnx.export(
        graph,
        dummy,
        buf,  # type: ignore[arg-type]  # a BytesIO is accepted at run time
        input_names=["point", "cache"],
        output_names=["reconstruction", "embedding"],
        dynamic_axes={k: {0: "batch"} for k in ("point", "cache", "reconstruction", "embedding")},
        opset_version=OPSET,
        dynamo=False,
    )
    return buf.getvalue()


class _EmbedGraph(torch.nn.Module):
    """`CCMTAD.embed_rows` as a module: the per-point embedding the step graph caches."""

    def __init__(self, model: CCMTAD) -> None:
        super().__init__()
        self.model = model

    def forward(self, point: torch.Tensor) -> torch.Tensor:
        return self.model.embed_rows(point)


def embed_onnx_bytes(model: CCMTAD) -> bytes:
    """The embedding graph: point [B, C] → z [B, d] (equal to the step graph's `embedding`)."""
    graph = _EmbedGraph(model.eval().cpu())
    buf = io.BytesIO()
    torch.onnx.export(
        graph,
        (torch.zeros(2, model.cfg.n_channels),),
        buf,  # type: ignore[arg-type]  # a BytesIO is accepted at run time
        input_names=["point"],
        output_names=["embedding"],
        dynamic_axes={k: {0: "batch"} for k in ("point", "embedding")},
        opset_version=OPSET,
        dynamo=False,
    )
    return buf.getvalue()


def check_step_parity(
    model: CCMTAD,
    full_bytes: bytes,
    step_bytes: bytes,
    seed: int = 0,
    embed_bytes: bytes | None = None,
) -> float:
    """Max |step graph − full graph| over a random stream scored point by point through ONNX
    Runtime with a rolling embedding cache (and |embedding graph − step graph's embedding|);
    raises ExportError above tolerance."""
    from detector.runtime import OnnxEmbedModel, OnnxStepModel

    cfg = model.cfg
    size, rng = cfg.window_size, np.random.default_rng(seed)
    stream = np.clip(rng.normal(0, 0.3, (size + 64, cfg.n_channels)).cumsum(0) * 0.1, -4, 4)
    stream = stream.astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        full_path, step_path = Path(tmp) / "full.onnx", Path(tmp) / "step.onnx"
        full_path.write_bytes(full_bytes)
        step_path.write_bytes(step_bytes)
        full = OnnxReconstructor(full_path, cfg.n_channels, size, "cpu")
        step = OnnxStepModel(step_path, cfg.n_channels, size, cfg.d_model, "cpu")
        windows = np.lib.stride_tricks.sliding_window_view(stream, size, axis=0)
        want = full.reconstruct(windows.transpose(0, 2, 1))
        zero = np.zeros((size - 1, size - 1, cfg.d_model), np.float32)
        _, cache = step.step(stream[: size - 1], zero)  # embeddings of the first L − 1 points
        got = []
        for t in range(size - 1, len(stream)):
            recon, z = step.step(stream[t : t + 1], cache[None])
            got.append(recon[0])
            cache = np.concatenate([cache[1:], z])
        if embed_bytes is not None:
            embed_path = Path(tmp) / "embed.onnx"
            embed_path.write_bytes(embed_bytes)
            embed = OnnxEmbedModel(embed_path, cfg.n_channels, cfg.d_model, "cpu")
            _, z_step = step.step(
                stream, np.zeros((len(stream), size - 1, cfg.d_model), np.float32)
            )
            z_diff = float(np.abs(embed.embed(stream) - z_step).max())
            if not z_diff <= PARITY_TOLERANCE:
                raise ExportError(f"embedding graph differs from the step graph by {z_diff:.3g}")
    diff = float(np.abs(np.stack(got) - want).max())
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(f"step graph differs from the full graph by {diff:.3g}")
    return diff


def check_parity(model: CCMTAD, model_bytes: bytes, windows: np.ndarray) -> float:
    """Max |ONNX Runtime − torch| on the given windows; raises ExportError above tolerance."""
    cfg = model.cfg
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(model_bytes)
        ort_out = OnnxReconstructor(path, cfg.n_channels, cfg.window_size, "cpu").reconstruct(
            windows
        )
    with torch.no_grad():
        torch_out = model.eval()(torch.from_numpy(windows)).numpy()
    diff = float(np.abs(ort_out - torch_out).max()) if len(windows) else 0.0
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(f"ONNX Runtime differs from torch by {diff:.3g} > {PARITY_TOLERANCE}")
    return diff


def parity_windows(model: CCMTAD, n: int = 256, seed: int = 0) -> np.ndarray:
    """Random windows within the clip range plus a few extremes, float32 [n, L, C]."""
    cfg = model.cfg
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1.5, 1.5, size=(n, cfg.window_size, cfg.n_channels)).astype(np.float32)
    w[:4] = np.array([-4, 4, 0, 1], np.float32)[:, None, None]
    return w


def export_bundle(
    result: TrainResult,
    cfg: TrainConfig,
    channel_names: list[str],
    out: Path,
    name: str,
    version: str | None = None,
    table: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write model.onnx + calibration.npz + manifest.json after the parity check passes
    (`table`: how a user's file was read, kept so replay and evaluation read it the same way;
    `extra`: more manifest entries, e.g. a refit schedule the service acts on)."""
    model = result.model
    if len(channel_names) != model.cfg.n_channels:
        raise ExportError(f"{len(channel_names)} channel names for {model.cfg.n_channels} channels")
    blob = onnx_bytes(model)
    diff = check_parity(model, blob, parity_windows(model, seed=cfg.seed))
    step_blob, embed_blob = step_onnx_bytes(model), embed_onnx_bytes(model)
    step_diff = check_step_parity(model, blob, step_blob, cfg.seed, embed_blob)
    now = dt.datetime.now(dt.UTC)
    manifest = {
        "kind": "ccm-tad",
        "name": name,
        "version": version or now.strftime("%Y%m%dT%H%M%SZ"),
        "created_at": now.isoformat(),
        "channel_names": list(channel_names),
        "window_size": model.cfg.window_size,
        "clip": cfg.clip,
        "scaler": {"kind": "minmax", "feature_range": [-1, 1]},
        "channel_clusters": [int(c) for c in result.clusters],
        "alarm": {k: float(v) for k, v in result.alarm.items()}
        | {
            k: int(result.alarm[k])
            for k in ("delta", "adapt_points", "median_points", "rebaseline_after_points")
        },
        "score": {
            "kind": result.channel_score.kind,
            "subspace_dim": int(len(result.channel_score.basis)),
            # flags and constant channels scored as bounded context (detector.score)
            "context_channels": _context(result.channel_score, channel_names),
            "context_cap": _finite_or_none(result.channel_score.context_cap),
            "selection": {
                "criterion": "ROC AUC of injected faults vs the same validation windows",
                "fault_auc": {k: float(v) for k, v in result.score_selection.items()},
            },
        },
        "channel_types": _channel_types(result, channel_names),
        "model": model.cfg.to_dict(),
        "training": asdict(cfg)
        | {
            "best_epoch": result.best_epoch,
            "history": result.history,
            "train_seconds": result.train_seconds,
            "n_validation": len(result.val_losses),
            "warnings": result.warnings,
        },
        "data_fingerprint": result.fingerprint,
        **({"table": table} if table else {}),
        **(extra or {}),
        "onnx": {"opset": OPSET, "parity_max_abs_diff": diff},
        "step": {"embedding_dim": model.cfg.d_model, "parity_max_abs_diff": step_diff},
    }
    arrays = {
        "scale_min": result.scale_min,
        "scale_range": result.scale_range,
        "sorted_losses": np.sort(result.val_losses),
        "validation_scores": result.val_losses,
    } | (result.channel_score.arrays() if result.channel_score.kind != "mse" else {})
    check_replay(result)
    write_bundle(out, manifest, arrays, blob, step_blob, embed_blob)
    load_bundle(out)  # what we wrote must load
    return out


def _context(score: ChannelScore, names: list[str]) -> list[str]:
    return [] if score.context is None else [names[j] for j in np.flatnonzero(score.context)]


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _channel_types(result: TrainResult, names: list[str]) -> dict[str, list[str]]:
    t = result.channel_types
    if t is None:
        return {"constant": [], "status": []}
    return {
        "constant": [names[j] for j in np.flatnonzero(t.constant_mask)],
        "status": [names[j] for j in np.flatnonzero(t.status_mask)],
    }


def check_replay(result: TrainResult) -> None:
    """Refuse a calibration under which the bundle's own nominal validation period, replayed,
    spends more than MAX_REPLAY_ALARM_FRACTION of its points in alarm."""
    from detector.offline import replay_alarm_fraction
    from detector.pvalue import TailReference
    from model_training.calibrate import alarm_params

    frac = replay_alarm_fraction(
        result.val_losses, TailReference.fit(result.val_losses), alarm_params(result.alarm)
    )
    if frac > MAX_REPLAY_ALARM_FRACTION:
        raise ExportError(
            f"degenerate calibration: replaying the nominal validation period spends "
            f"{frac:.0%} of it in alarm (at most {MAX_REPLAY_ALARM_FRACTION:.0%})"
        )


def train_and_export(
    data: np.ndarray,
    channel_names: list[str],
    out: Path,
    cfg: TrainConfig,
    name: str,
    version: str | None = None,
    table: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Train, then write a checked bundle to `out` (imports run export → train → model)."""
    from model_training.train import train

    result = train(data, cfg, on_epoch)
    return export_bundle(result, cfg, channel_names, out, name, version, table, extra)
