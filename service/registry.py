"""The model registry: which bundle version of each model name is serving.

`TAD_MODEL_DIR` holds bundle directories; several versions of one name may sit side by side and
the newest valid one (by manifest `created_at`) serves. A rescan (reload) swaps the active
version by replacing one dict, so a request already holding the old `LoadedModel` finishes with
it and the next request uses the new one: no point is dropped. Stream state is not touched: the
raw ring buffer is the source of truth, so a version with the same channels simply continues.
A bundle that fails validation is refused and reported; the running version stays.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from detector.bundle import MANIFEST, Bundle, load_bundle
from detector.errors import BundleError
from detector.online import OnlineDetector
from detector.probe import probe_failure
from detector.runtime import online_detector

log = logging.getLogger(__name__)


def channels_hash(names: tuple[str, ...]) -> str:
    """A short fingerprint of a channel schema, stored with each stream."""
    return hashlib.sha256("\x1f".join(names).encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A serving version: its bundle and the online detector that scores with it."""

    bundle: Bundle
    detector: OnlineDetector
    created_at: dt.datetime

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> str:
        return self.bundle.version

    @property
    def channels(self) -> tuple[str, ...]:
        return self.bundle.calibration.channel_names

    @functools.cached_property
    def channels_hash(self) -> str:
        return channels_hash(self.channels)


@dataclass(frozen=True)
class ScanReport:
    """What one scan found: valid bundles, refusals, and which names changed version."""

    bundles: list[tuple[Bundle, dt.datetime]]
    refused: list[tuple[str, str]]
    changed: list[str] = field(default_factory=list)


def _created_at(bundle: Bundle) -> dt.datetime:
    raw = bundle.manifest.get("created_at")
    try:
        when = dt.datetime.fromisoformat(str(raw))
    except ValueError as exc:
        raise BundleError(bundle.path, f"created_at {raw!r} is not an ISO 8601 time") from exc
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class ModelDirError(RuntimeError):
    """The model directory cannot be scanned (missing, not a directory)."""


class ModelRegistry:
    """Loads bundles from a directory; `scan()` blocks (hashing, ONNX sessions), so the app
    runs it in a thread."""

    def __init__(
        self, model_dir: Path, device: str = "cpu", threads: int = 1, incremental: bool = True
    ) -> None:
        self.model_dir = model_dir
        self._device, self._threads = device, threads
        self._incremental = incremental
        self._active: dict[str, LoadedModel] = {}
        self.last_scan = ScanReport([], [])

    @property
    def active(self) -> dict[str, LoadedModel]:
        return self._active

    def get(self, name: str) -> LoadedModel | None:
        return self._active.get(name)

    def only(self) -> LoadedModel | None:
        """The model to use when a request names none: defined only if exactly one serves."""
        models = list(self._active.values())
        return models[0] if len(models) == 1 else None

    def _detector(self, bundle: Bundle) -> OnlineDetector:
        """The online detector of a bundle: full graph, plus the step and embedding graphs when
        the bundle has them (older bundles score with the full graph only)."""
        return online_detector(bundle, self._device, self._threads, self._incremental)

    def scan(self) -> ScanReport:
        """Rescan the directory and switch every name to its newest valid version."""
        bundles: list[tuple[Bundle, dt.datetime]] = []
        refused: list[tuple[str, str]] = []
        if not self.model_dir.is_dir():
            raise ModelDirError(f"the model directory {self.model_dir.name!r} does not exist")
        # a regular manifest only: a FIFO or device named manifest.json would block the read
        for path in sorted(p for p in self.model_dir.iterdir() if (p / MANIFEST).is_file()):
            try:
                bundle = load_bundle(path)
                bundles.append((bundle, _created_at(bundle)))
            except BundleError as exc:
                log.warning("refused bundle %s: %s", path, exc.reason)
                refused.append((str(path), exc.reason))
        by_name: dict[str, list[tuple[Bundle, dt.datetime]]] = {}
        for bundle, when in bundles:
            by_name.setdefault(bundle.name, []).append((bundle, when))
        active = dict(self._active)
        changed = []
        for name, candidates in by_name.items():
            current = serving = active.get(name)
            if current is not None and all(
                b.content_hash != current.bundle.content_hash for b, _ in candidates
            ):
                current = None  # the serving version was removed: the newest valid one takes over
            for bundle, when in sorted(
                candidates, key=lambda c: (c[1], c[0].version), reverse=True
            ):
                if current is not None and (
                    current.bundle.content_hash == bundle.content_hash or when < current.created_at
                ):
                    break  # the serving version is still the newest that works
                try:
                    detector = self._detector(bundle)
                    failure = probe_failure(detector)
                    if failure is not None:
                        raise BundleError(bundle.path, failure)
                except BundleError as exc:
                    log.warning("refused bundle %s: %s", bundle.path, exc.reason)
                    refused.append((str(bundle.path), exc.reason))
                    continue
                active[name] = LoadedModel(bundle, detector, when)
                old = "none" if serving is None else serving.version
                changed.append(f"{name}: {old} → {bundle.version}")
                log.info("serving model %s version %s (%s)", name, bundle.version, bundle.path)
                break
        self._active = active  # one assignment: requests see the old or the new dict
        refused_paths = {p for p, _ in refused}
        valid = [(b, w) for b, w in bundles if str(b.path) not in refused_paths]
        self.last_scan = ScanReport(valid, refused, changed)
        return self.last_scan
