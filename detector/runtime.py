"""ONNX Runtime reconstructor: the model call of the online detector.

CUDA is used when onnxruntime-gpu is installed and a GPU is visible, CPU otherwise; the
choice can be forced. A model whose inputs or outputs do not fit the bundle is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from detector.alignment import aligned
from detector.bundle import Bundle
from detector.errors import BundleError
from detector.incremental import IncrementalScorer
from detector.online import OnlineDetector


def _session(model_path: Path, device: str, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(model_path), opts, providers=choose_providers(device))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise BundleError(model_path, f"ONNX Runtime cannot load the model: {exc}") from exc


def _incremental_graph(bundle: Bundle, path: Path | None, what: str) -> tuple[Path, int]:
    """The path of one of a bundle's optional graphs and the embedding width they share."""
    if path is None or bundle.embedding_dim is None:
        raise BundleError(bundle.path, f"bundle has no {what}")
    return path, bundle.embedding_dim


def choose_providers(device: str = "auto") -> list[str]:
    """'auto' → CUDA if available, else CPU; 'cuda' fails when CUDA is not available."""
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise RuntimeError(f"CUDA requested but ONNX Runtime offers only {available}")
    return ["CPUExecutionProvider"]


class OnnxReconstructor:
    """Runs `model.onnx`: windows [B, L, C] float32 → reconstructed last point [B, C]."""

    def __init__(
        self,
        model_path: Path,
        n_channels: int,
        window_size: int,
        device: str = "auto",
        threads: int = 1,
        max_batch: int = 4096,
    ) -> None:
        self.session = _session(model_path, device, threads)
        inp, out = self.session.get_inputs()[0], self.session.get_outputs()[0]
        if list(inp.shape[1:]) != [window_size, n_channels] or out.shape[-1] != n_channels:
            raise BundleError(
                model_path,
                f"model input {inp.shape} / output {out.shape} do not fit "
                f"window_size={window_size}, channels={n_channels}",
            )
        self.input_name, self.output_name = inp.name, out.name
        self.max_batch = max_batch

    @classmethod
    def from_bundle(
        cls, bundle: Bundle, device: str = "auto", threads: int = 1
    ) -> OnnxReconstructor:
        cal = bundle.calibration
        return cls(bundle.model_path, cal.n_channels, cal.window_size, device, threads)

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def reconstruct(self, windows: np.ndarray) -> np.ndarray:
        parts = [
            self.session.run(
                [self.output_name], {self.input_name: aligned(windows[i : i + self.max_batch])}
            )[0]
            for i in range(0, len(windows), self.max_batch)
        ]
        return np.concatenate(parts) if parts else np.empty((0, windows.shape[-1]), np.float32)


class OnnxStepModel:
    """Runs `model_step.onnx`: (point [B, C], cache [B, L − 1, d]) → (recon [B, C], z [B, d])."""

    def __init__(
        self,
        model_path: Path,
        n_channels: int,
        window_size: int,
        embedding_dim: int,
        device: str = "auto",
        threads: int = 1,
    ) -> None:
        self.session = _session(model_path, device, threads)
        point, cache = self.session.get_inputs()
        if list(point.shape[1:]) != [n_channels] or list(cache.shape[1:]) != [
            window_size - 1,
            embedding_dim,
        ]:
            raise BundleError(
                model_path, f"step graph inputs {point.shape}, {cache.shape} do not fit the bundle"
            )
        self.embedding_dim = embedding_dim

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: str = "auto", threads: int = 1) -> OnnxStepModel:
        path, dim = _incremental_graph(bundle, bundle.step_model_path, "incremental step graph")
        cal = bundle.calibration
        return cls(path, cal.n_channels, cal.window_size, dim, device, threads)

    def step(self, points: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        recon, emb = self.session.run(
            None,
            {
                "point": aligned(points),
                "cache": aligned(cache),
            },
        )
        return recon, emb


class OnnxEmbedModel:
    """Runs `model_embed.onnx`: points [B, C] → embeddings [B, d]."""

    def __init__(
        self,
        model_path: Path,
        n_channels: int,
        embedding_dim: int,
        device: str = "auto",
        threads: int = 1,
    ) -> None:
        self.session = _session(model_path, device, threads)
        (point,), (out,) = self.session.get_inputs(), self.session.get_outputs()
        if list(point.shape[1:]) != [n_channels] or list(out.shape[1:]) != [embedding_dim]:
            raise BundleError(
                model_path, f"embedding graph {point.shape} → {out.shape} does not fit the bundle"
            )
        self.embedding_dim = embedding_dim

    @classmethod
    def from_bundle(cls, bundle: Bundle, device: str = "auto", threads: int = 1) -> OnnxEmbedModel:
        path, dim = _incremental_graph(bundle, bundle.embed_model_path, "embedding graph")
        return cls(path, bundle.calibration.n_channels, dim, device, threads)

    def embed(self, points: np.ndarray) -> np.ndarray:
        (z,) = self.session.run(None, {"point": aligned(points)})
        return np.asarray(z)


def online_detector(
    bundle: Bundle, device: str = "cpu", threads: int = 1, incremental: bool = True
) -> OnlineDetector:
    """The online detector of a bundle as the service builds it: the full graph, plus the
    step and embedding graphs when the bundle has them. The evaluator uses this too, so an
    offline run scores with exactly the graphs a served stream does (the step graph agrees
    with the full graph to 1e-5, not to the last bit)."""
    cal = bundle.calibration
    model = OnnxReconstructor.from_bundle(bundle, device, threads)
    scorer = None
    if incremental and bundle.embed_model_path is not None:
        step = OnnxStepModel.from_bundle(bundle, device, threads)
        embed = OnnxEmbedModel.from_bundle(bundle, device, threads)
        scorer = IncrementalScorer(step, embed, cal.window_size, cal.scale)
    return OnlineDetector(cal, model, scorer)
