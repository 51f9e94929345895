"""Recorded history (issue 26, part 1): the last TAD_HISTORY_POINTS accepted points of each
stream, exported a page at a time as JSON or CSV, on the memory store and on Redis, deleted
with the stream."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest

from tests.support.data import points, series


@pytest.fixture
def history_client(make_client: Any, store_settings: dict[str, Any]) -> Any:
    """A service keeping 300 points per stream, on each store."""
    return make_client(history_points=300, **store_settings)


def export_all(c: Any, stream: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every page of the stream's history; returns the points and the number of pages."""
    got: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        q = dict(params) | ({} if cursor is None else {"cursor": cursor})
        r = c.get(f"/v1/streams/{stream}/points", params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        got += body["points"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return got, pages


def test_history_keeps_the_last_points_and_pages_through_them(history_client: Any) -> None:
    c = history_client
    x = series(500)
    for lo, hi in ((0, 100), (100, 101), (101, 500)):  # a batch, one point, the rest
        r = c.post("/v1/streams/h/points", json={"points": points(x[lo:hi], lo)})
        assert r.status_code == 200, r.text
    got, pages = export_all(c, "h", limit=70)
    assert [p["index"] for p in got] == list(range(200, 500))  # the newest 300, in order
    assert pages == 5
    assert np.array([p["values"] for p in got]) == pytest.approx(x[200:], abs=0)
    assert [p["timestamp"] for p in got] == [float(t) for t in range(200, 500)]
    first = c.get("/v1/streams/h/points", params={"limit": 1}).json()
    assert first["retained_from_index"] == 200 and first["channels"] == [
        "temperature",
        "pressure",
        "flow",
        "vibration",
    ]
    window, _ = export_all(c, "h", **{"from": 250.5, "to": 260, "limit": 3})
    assert [p["index"] for p in window] == list(range(251, 260))
    csv_text = c.get("/v1/streams/h/points", params={"format": "csv", "limit": 1000}).text
    rows = list(csv.reader(io.StringIO(csv_text)))
    assert rows[0] == ["index", "timestamp", "temperature", "pressure", "flow", "vibration"]
    assert len(rows) == 301 and float(rows[1][2]) == x[200, 0]
    paged = c.get("/v1/streams/h/points", params={"format": "csv", "limit": 10})
    assert paged.headers["x-next-cursor"] == "210"


def test_resent_points_are_recorded_once_and_deleting_the_stream_deletes_its_history(
    history_client: Any,
) -> None:
    c = history_client
    x = series(120)
    c.post("/v1/streams/d/points", json={"points": points(x[:80])})
    again = c.post("/v1/streams/d/points", json={"points": points(x[60:120], 60)}).json()
    assert again["duplicates"] == 20 and again["accepted"] == 40
    got, _ = export_all(c, "d", limit=1000)
    assert [p["index"] for p in got] == list(range(120))
    assert c.delete("/v1/streams/d").status_code == 204
    assert c.get("/v1/streams/d/points").status_code == 404
    c.post("/v1/streams/d/points", json={"points": points(x[:5])})  # a new stream, same id
    got, _ = export_all(c, "d")
    assert [p["index"] for p in got] == list(range(5))


def test_history_requests_are_checked(history_client: Any) -> None:
    c = history_client
    c.post("/v1/streams/q/points", json={"points": points(series(30))})
    r = c.get("/v1/streams/q/points", params={"cursor": "nope"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "cursor"
    r = c.get("/v1/streams/q/points", params={"limit": 0})
    assert r.status_code == 422
    r = c.get("/v1/streams/q/points", params={"format": "xml"})
    assert r.status_code == 422
    assert c.get("/v1/streams/nobody/points").status_code == 404


def test_without_a_history_setting_only_the_episode_history_is_kept(make_client: Any) -> None:
    c = make_client()
    c.post("/v1/streams/e/points", json={"points": points(series(200))})
    got, _ = export_all(c, "e")
    assert len(got) < 200  # a quiet stream keeps the points since its evidence was last 0
