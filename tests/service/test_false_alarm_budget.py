"""A stream's own false-alarm budget: h recomputed from the bundle's validation period by the
trainer's rule (detector.budget), readable per model, refused with the threshold it replaces."""

from __future__ import annotations

from typing import Any

import numpy as np

from detector.budget import thresholds
from detector.bundle import load_bundle


def test_a_stream_budget_sets_its_threshold_by_the_trainers_rule(client: Any) -> None:
    models = client.get("/v1/models").json()["models"]
    (info,) = [m for m in models if m["active"]]
    assert info["false_alarms_per_10k"] == 1.0  # the bundle's budget, as trained
    strict = client.put("/v1/streams/strict", json={"false_alarms_per_10k": 0.01})
    loose = client.put("/v1/streams/loose", json={"false_alarms_per_10k": 1000})
    assert strict.status_code == loose.status_code == 201, (strict.text, loose.text)
    h_strict, h_loose = strict.json()["threshold"], loose.json()["threshold"]
    assert h_strict >= info["threshold"] >= h_loose
    assert h_strict > h_loose
    (serving,) = client.app.state.services.registry.active.values()
    bundle = load_bundle(serving.bundle.path)
    cal = bundle.calibration
    assert cal.validation_scores is not None
    seed = int(bundle.manifest["training"]["seed"])
    want = thresholds(cal.validation_scores, cal.params, 0.01, cal.min_alarm_points, seed)
    assert np.isclose(h_strict, want["threshold"])
    assert client.get("/v1/streams/strict").json()["threshold"] == h_strict  # persisted


def test_budget_and_threshold_together_are_refused(client: Any) -> None:
    r = client.put("/v1/streams/s", json={"threshold": 5.0, "false_alarms_per_10k": 1})
    assert r.status_code == 422 and "not both" in r.text
    r = client.put("/v1/streams/s", json={"false_alarms_per_10k": 0})
    assert r.status_code == 422 and "false_alarms_per_10k" in r.text
