"""Bundles are input too. A newer bundle version that is corrupted (any byte of any file flipped,
a file truncated, emptied or missing) or mismatched (its hashes recomputed, so it passes the
integrity check, but its content cannot score correctly: NaN in the calibration, a threshold
that never or always alarms, channels that do not fit its graph) is refused at (re)load with a
message naming the problem, and the running version stays in service, scoring exactly as before.

tests/service/test_models.py covers a truncated model file, a manifest that is not JSON and a
window size the graph does not take, one each; this covers the rest, property-based.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from detector.bundle import (
    CALIBRATION_FILE,
    MANIFEST,
    MODEL_FILE,
    STEP_FILE,
    content_hash,
    sha256_file,
)
from service.registry import ModelRegistry
from tests.support.data import clone_bundle, later, points, series
from tests.support.results import assert_same_results, collect, reference


def rewrite(
    bundle: Path,
    manifest: Callable[[dict[str, Any]], None] | None = None,
    arrays: Callable[[dict[str, np.ndarray]], None] | None = None,
) -> None:
    """Change a bundle's content and recompute every hash: it passes the integrity checks."""
    m = json.loads((bundle / MANIFEST).read_text())
    if arrays is not None:
        with np.load(bundle / CALIBRATION_FILE) as z:
            data = {k: np.array(z[k]) for k in z.files}
        arrays(data)
        np.savez(bundle / CALIBRATION_FILE, **data)  # type: ignore[arg-type]
        m["files"][CALIBRATION_FILE] = sha256_file(bundle / CALIBRATION_FILE)
    if manifest is not None:
        manifest(m)
    m["content_hash"] = content_hash(m)
    (bundle / MANIFEST).write_text(json.dumps(m))


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m.__setitem__(key, value)


def _alarm(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m["alarm"].__setitem__(key, value)


def _array(key: str, value: float, where: int = 0) -> Callable[[dict[str, np.ndarray]], None]:
    def change(a: dict[str, np.ndarray]) -> None:
        a[key] = a[key].astype(np.float64)
        a[key].flat[where] = value

    return change


MISMATCHED: dict[str, tuple[Any, Any, str]] = {
    "NaN scaler minimum": (None, _array("scale_min", np.nan), "scale_min holds NaN"),
    "infinite scaler range": (None, _array("scale_range", np.inf, 2), "scale_range holds NaN"),
    "zero scaler range": (None, _array("scale_range", 0.0, 1), "scale_range must be positive"),
    "NaN validation loss": (None, _array("sorted_losses", np.nan, -1), "sorted_losses holds"),
    "unsorted losses": (None, _array("sorted_losses", 1e9, 0), "ascending"),
    "NaN threshold": (_alarm("threshold", float("nan")), None, "alarm threshold nan"),
    "negative threshold": (_alarm("threshold", -1.0), None, "alarm threshold -1.0"),
    "infinite threshold": (_alarm("threshold", float("inf")), None, "alarm threshold inf"),
    "alpha of 1": (_alarm("alpha", 1.0), None, "alarm parameters out of range"),
    "NaN epsilon": (_alarm("epsilon", float("nan")), None, "alarm parameters out of range"),
    "NaN clip": (_set("clip", float("nan")), None, "clip nan"),
    "duplicate channels": (
        _set("channel_names", ["temperature", "temperature", "flow", "vibration"]),
        None,
        "distinct",
    ),
    "five channels for a four-channel graph": (
        _set("channel_names", ["a", "b", "c", "d", "e"]),
        None,
        "scaler shape does not match 5 channels",
    ),
    "window the graph does not take": (_set("window_size", 48), None, "do not fit"),
    "unknown schema version": (_set("schema_version", 99), None, "schema_version 99"),
    "no model file listed": (lambda m: m["files"].pop(MODEL_FILE), None, "model.onnx"),
}


@pytest.fixture
def serving(tmp_path: Path, bundle_v1: Path) -> tuple[Path, ModelRegistry]:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(bundle_v1, models / "demo-v1")
    registry = ModelRegistry(models)
    report = registry.scan()
    assert report.changed == ["demo: none → v1"]
    return models, registry


def assert_refused_and_v1_serves(registry: ModelRegistry, bad: Path, says: str) -> None:
    hash_v1 = registry.active["demo"].bundle.content_hash
    report = registry.scan()
    reasons = {Path(p).name: r for p, r in report.refused}
    assert bad.name in reasons, report
    assert says in reasons[bad.name], reasons[bad.name]
    assert report.changed == []
    assert registry.active["demo"].version == "v1"
    assert registry.active["demo"].bundle.content_hash == hash_v1


@pytest.mark.parametrize("case", sorted(MISMATCHED))
def test_a_mismatched_newer_version_is_refused(
    serving: tuple[Path, ModelRegistry], bundle_v1: Path, case: str
) -> None:
    models, registry = serving
    manifest, arrays, says = MISMATCHED[case]
    bad = clone_bundle(bundle_v1, models / "demo-v2", version="v2", created_at=later(1))
    rewrite(bad, manifest, arrays)
    assert_refused_and_v1_serves(registry, bad, says)


FILES = [MANIFEST, MODEL_FILE, CALIBRATION_FILE, STEP_FILE]


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples on every run: CI is not flaky
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(FILES),
    damage=st.sampled_from(["flip", "truncate", "empty", "delete", "append"]),
    where=st.floats(0, 1, exclude_max=True),
    mask=st.integers(1, 255),
)
def test_a_corrupted_newer_version_is_refused(
    serving: tuple[Path, ModelRegistry],
    bundle_v1: Path,
    name: str,
    damage: str,
    where: float,
    mask: int,
) -> None:
    models, registry = serving
    bad = models / "demo-v2"
    shutil.rmtree(bad, ignore_errors=True)
    clone_bundle(bundle_v1, bad, version="v2", created_at=later(1))
    target = bad / name
    assume(target.exists())
    data = bytearray(target.read_bytes())
    before = json.loads(data) if name == MANIFEST else None
    at = int(where * len(data))
    if damage == "flip":
        data[at] ^= mask
    elif damage == "truncate":
        data = data[:at]
    elif damage == "empty":
        data = bytearray()
    elif damage == "append":
        data += bytes([mask])
    if damage == "delete":
        target.unlink()
    else:
        target.write_bytes(bytes(data))
    if before is not None:  # a change of JSON whitespace alone is no corruption
        with contextlib.suppress(ValueError):  # not JSON any more: corrupt for sure
            assume(json.loads(data) != before)
    assert_refused_and_v1_serves(registry, bad, "")


def test_the_service_keeps_scoring_with_the_running_version(
    make_client: Any, model_dir: Path, bundle_v1: Path
) -> None:
    """Through the API: a refused reload is reported, and a stream continues exactly."""
    c = make_client()
    x = series(120)
    first = c.post("/v1/streams/s/points", json={"points": points(x[:60])}).json()
    for i, case in enumerate(("NaN threshold", "duplicate channels", "NaN scaler minimum")):
        manifest, arrays, says = MISMATCHED[case]
        bad = clone_bundle(
            bundle_v1, model_dir / f"demo-bad{i}", version=f"bad{i}", created_at=later(1 + i)
        )
        rewrite(bad, manifest, arrays)
    (model_dir / "demo-bad0" / MODEL_FILE).write_bytes(b"\x08\x01")  # and a corrupt graph
    reload = c.post("/v1/models/reload").json()
    assert reload["changed"] == []
    reasons = {r["directory"]: r["reason"] for r in reload["refused"]}
    assert set(reasons) == {"demo-bad0", "demo-bad1", "demo-bad2"}
    assert all(reasons.values())
    rest = c.post("/v1/streams/s/points", json={"points": points(x[60:], 60)}).json()
    assert rest["model_version"] == "v1"
    assert_same_results(collect([first, rest]), reference(bundle_v1, x, [60]))
    assert c.get("/readyz").status_code == 200
