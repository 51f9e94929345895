"""Refits (issue 26, item 5): a new version replaces the running one only if it passes the
label-free promotion check, and a model that declares `refit` retrains itself on schedule."""

from __future__ import annotations

import time
from typing import Any

from service.training.refit import refit_job_id
from tests.service.test_training_jobs import SMALL, finished, serving
from tests.support.data import points, series
from tests.support.processes import wait_for


def versions(c: Any, name: str) -> list[str]:
    return sorted(
        str(m["version"]) for m in c.get("/v1/models").json()["models"] if m["name"] == name
    )


def test_a_version_that_fails_its_promotion_check_is_discarded(
    make_client: Any, model_dir: Any
) -> None:
    c = make_client(history_points=5000, refit_check_s=0)
    x = series(1600, anomaly=None, seed=4)
    c.post("/v1/streams/a/points", json={"points": points(x)})
    r = c.post("/v1/training/jobs", json={"model": "plant", "streams": ["a"], "options": SMALL})
    first = finished(c, r.json()["job_id"])
    assert first["status"] == "succeeded" and first["result"]["promoted"] is True
    wait_for(lambda: serving(c, "plant"), 60, "version 1 to load")
    (v1,) = versions(c, "plant")
    # stream b spent most of its history in a quiet regime (a twentieth of the amplitude), then
    # came back to normal: a model trained on the quiet part alarms on the normal end, which the
    # running version (trained on normal readings) takes in its stride
    y = series(2000, anomaly=None, seed=5)
    y[:1500] *= 0.05
    for lo in range(0, 2000, 500):  # on the demo model: two serve now, so it is named
        body = {"model": "demo", "points": points(y[lo : lo + 500], lo)}
        assert c.post("/v1/streams/b/points", json=body).status_code == 200
    check = {"max_false_alarms_per_10k": 5, "holdout_fraction": 0.25}
    body = {"model": "plant", "streams": ["b"], "options": SMALL, "promote_if": check}
    r = c.post("/v1/training/jobs", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["promote_if"] == check
    done = finished(c, r.json()["job_id"])
    assert done["status"] == "succeeded", done
    res = done["result"]
    assert res["promoted"] is False and res["bundle"] is None, res
    verdict = res["promotion"]
    assert verdict["new"]["points"] == 500 and verdict["running"] is not None
    assert verdict["new"]["in_alarm"] > verdict["running"]["in_alarm"], verdict
    assert "the running version is kept" in verdict["reason"]
    c.post("/v1/models/reload")
    assert versions(c, "plant") == [v1]  # still the old version, and only it
    assert not any(
        p.name.startswith("plant-") and p.name != f"plant-{v1}" for p in model_dir.iterdir()
    )


def test_a_model_that_declares_a_refit_retrains_itself_and_promotes_a_passing_version(
    make_client: Any,
) -> None:
    c = make_client(history_points=5000, refit_check_s=0.3)
    x = series(1600, anomaly=None, seed=6)
    start = time.time() - 1600  # wall-clock times: a refit trains on the last window_s
    stamped = [{"timestamp": start + i, "values": row} for i, row in enumerate(x.tolist())]
    c.post("/v1/streams/r/points", json={"points": stamped})
    plan = {"every_s": 2, "window_s": 86400}
    body = {"model": "self", "streams": ["r"], "options": SMALL, "refit": plan}
    r = c.post("/v1/training/jobs", json=body)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["refit"]["every_s"] == 2 and job["refit"]["streams"] == ["r"]
    assert job["promote_if"] == {"max_false_alarms_per_10k": 5.0, "holdout_fraction": 0.2}
    done = finished(c, job["job_id"])
    assert done["result"]["promoted"] is True, done
    wait_for(lambda: serving(c, "self"), 60, "the first version to load")
    (v1,) = versions(c, "self")
    refit_id = refit_job_id("self", v1, 1)  # the schedule's first refit of that version
    refit = wait_for(
        lambda: (j := c.get(f"/v1/training/jobs/{refit_id}")).status_code == 200 and j.json(),
        60,
        "the scheduled refit job",
    )
    assert refit["refit"]["every_s"] == 2  # the new version declares the schedule again
    done = finished(c, refit_id)
    assert done["status"] == "succeeded" and done["result"]["promoted"] is True, done
    verdict = done["result"]["promotion"]
    assert verdict["running"] is not None and verdict["new"]["per_10k"] <= 5.0
    wait_for(lambda: len(versions(c, "self")) >= 2, 60, "the refit version to load")
    wait_for(
        lambda: 'tad_refits_total{model="self",outcome="promoted"}' in c.get("/metrics").text,
        30,
        "the refit counted",
    )
    assert 'tad_refits_total{model="self",outcome="submitted"}' in c.get("/metrics").text
