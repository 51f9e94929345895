"""Scoped API keys (issue 25): a role (read / ingest / admin) and optionally a tenant per key,
over HTTP and WebSocket; a bare key keeps every right."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.data import points, series

ADMIN, INGEST_A, READ_A, READ_ALL, INGEST_B = (
    "root-key-0001",
    "a-ingest-0002",
    "a-read-0003",
    "all-read-0004",
    "b-ingest-0005",
)
ENTRIES = (
    f"{ADMIN},ingest@plant-a:{INGEST_A},read@plant-a:{READ_A},read:{READ_ALL},"
    f"ingest@plant-b:{INGEST_B}"
)


def h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


@pytest.fixture
def scoped(make_client: Any) -> Any:
    return make_client(api_keys=ENTRIES)


def test_roles(scoped: Any) -> None:
    body = {"points": points(series(30))}
    assert scoped.post("/v1/streams/plant-a:p1/points", json=body, headers=h(INGEST_A)).is_success
    r = scoped.post("/v1/streams/plant-a:p2/points", json=body, headers=h(READ_A))
    assert r.status_code == 403 and "role is read" in r.json()["error"]["message"]
    assert scoped.get("/v1/streams/plant-a:p1", headers=h(READ_ALL)).status_code == 200
    # α/h/budget, re-baseline, delete and reload are the admin's
    r = scoped.put("/v1/streams/plant-a:p1", json={"threshold": 20.0}, headers=h(INGEST_A))
    assert r.status_code == 403 and "needs admin" in r.json()["error"]["message"]
    assert scoped.delete("/v1/streams/plant-a:p1", headers=h(INGEST_A)).status_code == 403
    assert scoped.post("/v1/models/reload", headers=h(READ_ALL)).status_code == 403
    assert scoped.post("/v1/models/reload", headers=h(ADMIN)).status_code == 200
    assert scoped.put(
        "/v1/streams/plant-a:p1", json={"threshold": 20.0}, headers=h(ADMIN)
    ).is_success
    assert scoped.delete("/v1/streams/plant-a:p1", headers=h(ADMIN)).status_code == 204
    assert scoped.get("/metrics", headers=h(READ_ALL)).status_code == 200


def test_tenants_see_and_touch_only_their_streams(scoped: Any) -> None:
    body = {"points": points(series(30))}
    for sid, key in (("plant-a:1", INGEST_A), ("plant-a:2", INGEST_A), ("plant-b:1", INGEST_B)):
        assert scoped.post(f"/v1/streams/{sid}/points", json=body, headers=h(key)).is_success
    r = scoped.post("/v1/streams/plant-b:2/points", json=body, headers=h(INGEST_A))
    err = r.json()["error"]
    assert r.status_code == 403 and err["field"] == "stream_id" and "plant-a:…" in err["message"]
    assert scoped.get("/v1/streams/plant-b:1", headers=h(READ_A)).status_code == 403
    assert scoped.get("/v1/streams/plant-b:1/alarms", headers=h(READ_A)).status_code == 403
    assert scoped.get("/v1/streams", headers=h(READ_A)).json()["streams"] == [
        "plant-a:1",
        "plant-a:2",
    ]
    assert scoped.get("/v1/streams", headers=h(ADMIN)).json()["streams"] == [
        "plant-a:1",
        "plant-a:2",
        "plant-b:1",
    ]
    batch = {
        "streams": [
            {"stream_id": "plant-a:3", "points": body["points"]},
            {"stream_id": "plant-b:3", "points": body["points"]},
        ]
    }
    r = scoped.post("/v1/points", json=batch, headers=h(INGEST_A))
    assert r.status_code == 403 and r.json()["error"]["field"] == "streams[1].stream_id"
    assert scoped.get("/v1/streams/plant-a:3", headers=h(ADMIN)).status_code == 404  # nothing
    r = scoped.get("/metrics", headers=h(READ_A))
    assert r.status_code == 403 and "unscoped read key" in r.json()["error"]["message"]
    r = scoped.post(
        "/v1/clustering/jobs",
        json={"streams": ["plant-b:1"], "n_clusters": 2},
        headers=h(INGEST_A),
    )
    assert r.status_code == 403 and r.json()["error"]["field"] == "streams[0]"


def test_websocket_scopes(scoped: Any) -> None:
    pts = points(series(3))
    with scoped.websocket_connect(f"/v1/streams/plant-a:w/ws?api_key={READ_A}") as ws:
        assert ws.receive_json()["error"]["type"] == "forbidden"  # read cannot write
    with scoped.websocket_connect(f"/v1/streams/plant-b:w/ws?api_key={INGEST_A}") as ws:
        assert ws.receive_json()["error"]["type"] == "forbidden"  # another tenant's stream
    with scoped.websocket_connect(f"/v1/ws?api_key={INGEST_A}") as ws:
        ws.send_json({"streams": [{"stream_id": "plant-a:m", "points": pts}]})
        assert "results" in ws.receive_json()
        ws.send_json({"streams": [{"stream_id": "plant-b:m", "points": pts}]})
        err = ws.receive_json()["error"]
        assert err["type"] == "forbidden" and err["field"] == "streams[0].stream_id"


def test_a_bare_key_keeps_every_right(make_client: Any) -> None:
    c = make_client(api_keys="only-one-key")
    assert c.post("/v1/models/reload", headers=h("only-one-key")).status_code == 200
    assert c.get("/metrics", headers=h("only-one-key")).status_code == 200


def test_jobs_are_seen_by_their_tenant_only(scoped: Any) -> None:
    """A tenant key sees (and cancels) only its tenant's clustering jobs; another tenant's is
    unknown to it (404, its existence private); unscoped keys see every job."""
    series_ = [[[float(i + j)] for j in range(16)] for i in range(4)]
    r = scoped.post(
        "/v1/clustering/jobs", json={"series": series_, "n_clusters": 2}, headers=h(INGEST_A)
    )
    assert r.status_code == 202, r.text
    loc = r.headers["location"]
    assert scoped.get(loc, headers=h(READ_A)).status_code == 200
    assert scoped.get(loc, headers=h(READ_ALL)).status_code == 200
    assert scoped.get(loc, headers=h(ADMIN)).status_code == 200
    assert scoped.get(loc, headers=h(INGEST_B)).status_code == 404
    assert scoped.delete(loc, headers=h(INGEST_B)).status_code == 404
