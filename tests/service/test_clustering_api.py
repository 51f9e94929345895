"""Clustering jobs through the HTTP API (in-process app, memory store): a tiny job end to end,
uploads, cancellation while the streaming API keeps answering, the queue bound, and the
no-torch path."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from service.clustering import backend
from tests.service.clustering_helpers import (
    SMALL,
    long_job_body,
    npz_bytes,
    three_groups,
    wait_job,
    wait_running,
)
from tests.support.data import points, series
from tests.support.processes import scaled


def test_three_groups_end_to_end_json(client: Any) -> None:
    x, y = three_groups()
    body = {"series": x.tolist(), "labels": [f"g{v}" for v in y], "n_clusters": 3}
    r = client.post("/v1/clustering/jobs", json={**body, "method": "emtc", "options": SMALL})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and r.headers["location"] == (
        f"/v1/clustering/jobs/{job['job_id']}"
    )
    assert job["input"] == {
        "source": "json",
        "filename": None,
        "n": 30,
        "t": 32,
        "d": 2,
        "n_clusters": 3,
        "method": "emtc",
        "labels": True,
        "resampled": False,
    }
    done = wait_job(client.get, r.headers["location"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["epoch"] == done["progress"]["epochs"] == SMALL["epochs"]
    assert isinstance(done["progress"]["loss"], float)
    res = done["result"]
    assert len(res["labels"]) == 30 and sorted(res["sizes"]) == [10, 10, 10]
    assert res["metrics"]["acc"] == 1.0 and res["metrics"]["ari"] == 1.0
    assert 0.5 < res["silhouette"] <= 1.0
    assert res["config"]["epochs"] == 5 and res["config"]["hidden"] == 16
    # same label for every member of a group, whatever the cluster ids are
    assert all(len({res["labels"][i] for i in np.flatnonzero(y == g)}) == 1 for g in range(3))
    assert done["attempts"] == 1 and done["recoveries"] == 0 and done["error"] is None


def test_unequal_lengths_are_resampled(client: Any) -> None:
    x, y = three_groups(n_per=6, t=40)
    ragged = [s[: 24 + (i % 5) * 4].tolist() for i, s in enumerate(x)]  # T_i from 24 to 40
    body = {"series": ragged, "n_clusters": 3, "method": "emtc", "options": SMALL}
    r = client.post("/v1/clustering/jobs", json=body)
    assert r.status_code == 202, r.text
    assert r.json()["input"]["resampled"] is True and r.json()["input"]["t"] == 40
    client.delete(r.headers["location"])  # only its input is checked: free the worker
    r = client.post(
        "/v1/clustering/jobs",
        json={
            "series": ragged,
            "n_clusters": 3,
            "method": "emtc",
            "options": {**SMALL, "length": 16},
        },
    )
    assert r.json()["input"]["t"] == 16
    done = wait_job(client.get, r.headers["location"])
    assert done["status"] == "succeeded" and done["result"]["metrics"] is None


def test_npz_upload_with_labels(client: Any) -> None:
    x, y = three_groups()
    r = client.post(
        "/v1/clustering/jobs",
        files={"file": ("runs.npz", npz_bytes(X=x.astype(np.float32), y=y))},
        data={
            "n_clusters": "3",
            "method": "emtc",
            "options": '{"epochs": 5, "hidden": 16, "depth": 2}',
        },
    )
    assert r.status_code == 202, r.text
    assert r.json()["input"]["source"] == "npz" and r.json()["input"]["filename"] == "runs.npz"
    done = wait_job(client.get, r.headers["location"])
    assert done["status"] == "succeeded" and done["result"]["metrics"]["acc"] == 1.0


def ts_text(
    x: np.ndarray, y: np.ndarray, lengths: list[int], missing: frozenset[tuple[int, int, int]]
) -> str:
    lines = [
        "@problemName synthetic",
        "@univariate false",
        f"@dimensions {x.shape[2]}",
        "@equalLength false",
        "@classLabel true a b c",
        "@data",
    ]
    for i, (s, label, n) in enumerate(zip(x, y, lengths, strict=True)):
        dims = [
            ",".join("?" if (i, t, d) in missing else f"{v:.5f}" for t, v in enumerate(s[:n, d]))
            for d in range(x.shape[2])
        ]
        lines.append(":".join(dims) + f":{'abc'[label]}")
    return "\n".join(lines) + "\n"


def test_ts_upload_unequal_lengths_with_missing_values(client: Any) -> None:
    x, y = three_groups()
    text = ts_text(x, y, [32 - (i % 3) for i in range(30)], frozenset({(0, 3, 1), (7, 0, 0)}))
    r = client.post(
        "/v1/clustering/jobs",
        files={"file": ("runs.ts", text.encode())},
        data={
            "n_clusters": "3",
            "method": "emtc",
            "options": '{"epochs": 5, "hidden": 16, "depth": 2}',
        },
    )
    assert r.status_code == 202, r.text
    job = r.json()["input"]
    assert job["source"] == "ts" and job["labels"] is True and job["resampled"] is True
    done = wait_job(client.get, r.headers["location"])
    assert done["status"] == "succeeded" and done["result"]["metrics"]["acc"] == 1.0


def test_streams_are_served_while_a_job_trains_and_cancel_stops_it(client: Any) -> None:
    r = client.post("/v1/clustering/jobs", json=long_job_body())
    assert r.status_code == 202
    loc = r.headers["location"]
    wait_running(client.get, loc)
    x = series(120)
    for lo in range(0, 120, 30):  # the streaming API answers while the job trains
        t0 = time.perf_counter()
        pr = client.post("/v1/streams/live/points", json={"points": points(x[lo : lo + 30], lo)})
        assert pr.status_code == 200 and pr.json()["accepted"] == 30
        assert time.perf_counter() - t0 < scaled(5.0)
    assert client.get(loc).json()["status"] == "running"  # it really overlapped

    d = client.delete(loc)
    assert d.status_code == 202 and d.json()["cancel_requested"] is True
    done = wait_job(client.get, loc, timeout=15)
    assert done["status"] == "cancelled" and done["result"] is None
    assert done["error"] == "cancelled by request"
    assert done["progress"]["epoch"] < 200
    again = client.delete(loc)  # nothing left to cancel: unchanged
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_queue_bound_and_cancelling_queued_jobs(make_client: Callable[..., Any]) -> None:
    c = make_client(clustering_workers=0, clustering_max_queue=2)  # nothing runs: jobs wait
    x, _ = three_groups()
    body = {"series": x.tolist(), "n_clusters": 3, "method": "emtc", "options": SMALL}
    first, second = (c.post("/v1/clustering/jobs", json=body) for _ in range(2))
    assert first.status_code == second.status_code == 202
    full = c.post("/v1/clustering/jobs", json=body)
    assert full.status_code == 429 and full.headers["retry-after"]
    err = full.json()["error"]
    assert err["type"] == "queue_full" and "TAD_CLUSTERING_MAX_QUEUE" in err["message"]
    d = c.delete(first.headers["location"])
    assert d.status_code == 200 and d.json()["status"] == "cancelled"
    assert c.post("/v1/clustering/jobs", json=body).status_code == 202  # room again
    assert c.get(second.headers["location"]).json()["status"] == "queued"


def test_without_torch_emtc_is_503_and_minirocket_still_runs(
    monkeypatch: pytest.MonkeyPatch, make_client: Callable[..., Any]
) -> None:
    monkeypatch.setattr(backend, "torch_missing", lambda: backend.NO_TORCH)
    c = make_client()
    x, y = three_groups()
    r = c.post(
        "/v1/clustering/jobs", json={"series": x.tolist(), "n_clusters": 3, "method": "emtc"}
    )
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["type"] == "clustering_unavailable" and "PyTorch" in err["message"]
    r = c.post("/v1/clustering/jobs", json={"series": x.tolist(), "n_clusters": 3})
    assert r.status_code == 202  # the default method needs no torch
    done = wait_job(c.get, r.headers["location"])
    assert done["status"] == "succeeded" and done["result"]["config"]["method"] == "minirocket"
    assert c.get(f"/v1/clustering/jobs/{'a' * 32}").status_code == 404


def test_minirocket_is_the_default_method_end_to_end(client: Any) -> None:
    x, y = three_groups()
    body = {"series": x.tolist(), "labels": [f"g{v}" for v in y], "n_clusters": 3}
    r = client.post("/v1/clustering/jobs", json={**body, "options": {"seed": 2}})
    assert r.status_code == 202, r.text
    assert r.json()["input"]["method"] == "minirocket"
    done = wait_job(client.get, r.headers["location"])
    assert done["status"] == "succeeded", done
    res = done["result"]
    assert res["metrics"]["acc"] == 1.0 and sorted(res["sizes"]) == [10, 10, 10]
    assert res["config"] == {
        "method": "minirocket",
        "n_features": 10_000,
        "seed": 2,
        "scaler": "standard",
    }
    assert res["epochs"] == 0 and res["silhouette"] is not None
    # the same through an upload, with fewer features
    r = client.post(
        "/v1/clustering/jobs",
        files={"file": ("runs.npz", npz_bytes(X=x.astype(np.float32), y=y))},
        data={"n_clusters": "3", "method": "minirocket", "options": '{"n_features": 840}'},
    )
    done = wait_job(client.get, r.headers["location"])
    assert done["result"]["metrics"]["acc"] == 1.0
    assert done["result"]["config"]["n_features"] == 840


def test_each_method_refuses_the_others_options(client: Any) -> None:
    x, _ = three_groups()
    base = {"series": x.tolist(), "n_clusters": 3}
    r = client.post("/v1/clustering/jobs", json={**base, "options": {"hidden": 8}})
    err = r.json()["error"]
    assert r.status_code == 422 and err["field"] == "options.hidden"
    assert "method 'emtc'" in err["message"]
    r = client.post(
        "/v1/clustering/jobs", json={**base, "method": "emtc", "options": {"n_features": 840}}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "options.n_features"
    r = client.post("/v1/clustering/jobs", json={**base, "method": "kmeans"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "method"
    short = {"series": [[[0.0], [1.0]]] * 4, "n_clusters": 2}
    r = client.post("/v1/clustering/jobs", json=short)
    assert r.status_code == 422 and "at least 9 steps" in r.json()["error"]["message"]
    r = client.post(
        "/v1/clustering/jobs",
        files={"file": ("runs.npz", npz_bytes(X=x.astype(np.float32)))},
        data={"n_clusters": "3", "method": "kmeans"},
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "method"
