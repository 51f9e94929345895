"""Fault families: the raw points of every alarm episode are kept when the alarm closes (memory
and Redis), within the history/size/count budgets, and a job naming streams clusters them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from service.demo import demo_series
from tests.service.clustering_helpers import wait_job
from tests.support.data import points, series


def faulty(n: int = 400) -> np.ndarray:
    """The demo series with three separate faults, so several alarms open and close."""
    x = series(n)
    for a, b in ((60, 90), (280, 310)):
        x[a:b] = series(n, anomaly=(a, b))[a:b]
    return x


JOBS = "/v1/clustering/jobs"
FAMILY_OPTIONS = {"epochs": 10, "hidden": 16, "depth": 2, "seed": 0, "stop_patience": 0}


def feed(c: Any, stream: str, x: np.ndarray, chunk: int, start: int = 0) -> None:
    for lo in range(0, len(x), chunk):
        body = {"points": points(x[lo : lo + chunk], start + lo)}
        r = c.post(f"/v1/streams/{stream}/points", json=body)
        assert r.status_code == 200, r.text


def closed_alarms(c: Any, stream: str) -> list[dict[str, Any]]:
    events = c.get(f"/v1/streams/{stream}/alarms").json()["events"]
    return [e for e in events if e["kind"] == "closed"]


def episodes(c: Any, stream: str, with_points: bool = True) -> list[dict[str, Any]]:
    r = c.get(f"/v1/streams/{stream}/episodes", params={"points": with_points})
    assert r.status_code == 200, r.text
    eps: list[dict[str, Any]] = r.json()["episodes"]
    return eps


@pytest.fixture(params=["memory", "redis"])
def store_settings(request: pytest.FixtureRequest, redis_prefix: str) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    return {"redis_url": request.getfixturevalue("redis_url"), "redis_prefix": redis_prefix}


@pytest.mark.parametrize("chunk", [5, 37, 400])
def test_each_closed_alarm_keeps_its_raw_points(
    make_client: Callable[..., Any], store_settings: dict[str, Any], chunk: int
) -> None:
    c = make_client(**store_settings)
    x = faulty(400)
    feed(c, "s", x, chunk)
    closed = closed_alarms(c, "s")
    assert len(closed) >= 2, "the fault should open and close alarms"
    eps = episodes(c, "s")
    assert [e["alarm_id"] for e in eps] == [e["alarm_id"] for e in closed]
    for e, ev in zip(eps, closed, strict=True):
        lo, hi = ev["onset_index"], ev["offset_index"]
        assert (e["onset_index"], e["offset_index"], e["closed_ts"]) == (lo, hi, ev["at_ts"])
        assert e["n_points"] == e["stored_points"] == hi - lo + 1
        assert not e["truncated"] and not e["resampled"]
        assert e["channels"] == ["temperature", "pressure", "flow", "vibration"]
        np.testing.assert_array_equal(np.array(e["values"]), x[lo : hi + 1])
        assert e["timestamps"] == list(range(lo, hi + 1))  # seq = row
    assert all(e["values"] is None for e in episodes(c, "s", with_points=False))


def test_budgets_evict_resample_and_truncate(make_client: Callable[..., Any]) -> None:
    x = faulty(400)
    c = make_client(episode_budget=2)
    feed(c, "all", x, 5)
    every = episodes(c, "all")
    assert len(every) == 2  # the oldest were evicted
    assert [e["alarm_id"] for e in every] == [e["alarm_id"] for e in closed_alarms(c, "all")][-2:]

    c = make_client(episode_max_points=3)
    feed(c, "small", x, 5)
    long_ones = [e for e in episodes(c, "small") if e["n_points"] > 3]
    assert long_ones and all(e["stored_points"] == 3 and e["resampled"] for e in long_ones)
    for e in long_ones:  # resampled over the whole span: first and last points are kept
        np.testing.assert_allclose(e["values"][0], x[e["onset_index"]])
        np.testing.assert_allclose(e["values"][-1], x[e["offset_index"]])

    c = make_client(episode_history_points=4)
    feed(c, "short", x, 5)
    got = episodes(c, "short")
    cut = [e for e in got if e["truncated"]]
    assert cut, [(e["onset_index"], e["offset_index"]) for e in got]
    for e in cut:  # the newest points are there, the onset fell off the history
        assert e["stored_points"] < e["n_points"]
        hi = e["offset_index"]
        np.testing.assert_array_equal(
            np.asarray(e["values"]).reshape(-1, 4), x[hi - e["stored_points"] + 1 : hi + 1]
        )

    c = make_client(episode_history_points=0)
    feed(c, "off", x, 37)
    assert closed_alarms(c, "off") and episodes(c, "off") == []


def test_only_points_since_the_accumulator_was_zero_are_kept(
    make_client: Callable[..., Any],
) -> None:
    c = make_client()
    store = c.app.state.services.store
    quiet = series(100, anomaly=None)
    feed(c, "q", quiet, 10)
    info = c.get("/v1/streams/q").json()
    assert info["accumulated"] == 0.0
    assert len(asyncio.run(store.raw_history("q"))) == 1  # a quiet stream keeps one point
    x = series(400)
    feed(c, "a", x[:212], 53)  # inside the fault: s > 0, the history grows
    kept = asyncio.run(store.raw_history("a"))
    assert len(kept) > 1
    assert c.put("/v1/streams/a", json={"alpha": 0.02}).status_code == 200
    assert asyncio.run(store.raw_history("a")) == kept  # a reconfiguration leaves it alone
    feed(c, "a", x[212:], 47, start=212)
    assert episodes(c, "a")
    assert c.delete("/v1/streams/a").status_code == 204
    assert c.get("/v1/streams/a/episodes").status_code == 404
    assert asyncio.run(store.episodes("a")) == [] and asyncio.run(store.raw_history("a")) == []


FAULT = 40


def with_faults(seed: int, plan: list[tuple[str, int]]) -> np.ndarray:
    """Demo data with two kinds of fault: 'A' vibration jumps, 'B' temperature drops."""
    x = demo_series(950, seed=seed, start=2000)
    for kind, a in plan:
        if kind == "A":
            x[a : a + FAULT, 3] += 4.0
        else:
            x[a : a + FAULT, 0] -= 4.0
    return x


PLANS = {
    "p1": (5, [("A", 150), ("B", 350), ("A", 550), ("B", 750)]),
    "p2": (6, [("B", 150), ("A", 350), ("B", 550), ("A", 750)]),
    "p3": (7, [("A", 150), ("A", 350), ("B", 550), ("B", 750)]),
}


def family(stream: str, onset: float, offset: float) -> str:
    """Which injected fault an episode overlaps; 'none' for a false alarm."""
    kinds = [k for k, a in PLANS[stream][1] if onset <= a + FAULT and offset >= a]
    return kinds[0] if kinds else "none"


def test_recorded_episodes_cluster_into_fault_families(make_client: Callable[..., Any]) -> None:
    c = make_client()
    for stream, (seed, plan) in PLANS.items():
        feed(c, stream, with_faults(seed, plan), 50)
    # one cluster per family present: A, B and, if the bundle raised any, false alarms
    kinds = {
        family(s, e["onset_ts"], e["offset_ts"])
        for s in PLANS
        for e in episodes(c, s, with_points=False)
    }
    assert {"A", "B"} <= kinds
    body = {
        "streams": list(PLANS),
        "n_clusters": len(kinds),
        "method": "emtc",
        "options": FAMILY_OPTIONS,
    }
    r = c.post(JOBS, json=body)
    assert r.status_code == 202, r.text
    n = sum(len(episodes(c, s, with_points=False)) for s in PLANS)
    assert r.json()["input"]["source"] == "episodes" and r.json()["input"]["n"] == n
    done = wait_job(c.get, r.headers["location"])
    assert done["status"] == "succeeded", done
    refs = done["result"]["episodes"]
    assert [e["cluster"] for e in refs] == done["result"]["labels"]
    groups: dict[str, set[int]] = {}
    for e in refs:
        groups.setdefault(family(e["stream_id"], e["onset_ts"], e["offset_ts"]), set()).add(
            e["cluster"]
        )
    # 12 injected faults: each kind is one family, and the two families differ
    assert sum(family(e["stream_id"], e["onset_ts"], e["offset_ts"]) != "none" for e in refs) == 12
    assert len(groups["A"]) == 1 and len(groups["B"]) == 1 and groups["A"] != groups["B"]

    later = c.post(JOBS, json={**body, "start": 500.0, "n_clusters": 2}).json()
    assert 0 < later["input"]["n"] < n
    done = wait_job(c.get, f"{JOBS}/{later['job_id']}")
    assert all(e["onset_ts"] >= 500.0 for e in done["result"]["episodes"])


def test_episode_jobs_refuse_unknown_streams_and_too_few_episodes(
    make_client: Callable[..., Any],
) -> None:
    c = make_client()
    feed(c, "one", series(400), 50)
    r = c.post(JOBS, json={"streams": ["one", "ghost"], "n_clusters": 2})
    assert r.status_code == 404 and r.json()["error"]["field"] == "streams[1]"
    r = c.post(JOBS, json={"streams": ["one"], "n_clusters": 2, "start": 1e9})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "not_enough_episodes" and "0 recorded alarm episodes" in err["message"]
    r = c.post(JOBS, json={"streams": ["one"], "n_clusters": 40})
    assert r.status_code == 422 and r.json()["error"]["field"] == "streams"
