"""Request bodies read in bulk: the binary body scores like JSON, its mistakes are 4xx naming
the body, and the OpenAPI document still describes the bodies the routes read themselves."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.demo import DEMO_CHANNELS
from service.ingest.wire import BINARY_TYPE
from service.schemas import ErrorResponse
from tests.support.data import points, series
from tests.support.results import assert_same_results, collect

RECORD = np.dtype([("timestamp", "<f8"), ("values", "<f4", (len(DEMO_CHANNELS),))])


def packed(values: np.ndarray, start: int) -> bytes:
    rec = np.zeros(len(values), RECORD)
    rec["timestamp"] = np.arange(start, start + len(values))
    rec["values"] = values
    return rec.tobytes()


def post_binary(client: Any, stream: str, body: bytes, **params: str) -> Any:
    return client.post(
        f"/v1/streams/{stream}/points",
        content=body,
        headers={"content-type": BINARY_TYPE},
        params=params,
    )


def test_binary_body_scores_like_json(client: Any) -> None:
    x = series(120).astype(np.float32).astype(np.float64)  # what float32 can carry
    got = [
        post_binary(client, "bin", packed(x[lo:hi], lo)).json()
        for lo, hi in ((0, 30), (30, 31), (31, 120))
    ]
    want = [
        client.post("/v1/streams/json/points", json={"points": points(x[lo:hi], lo)}).json()
        for lo, hi in ((0, 30), (30, 31), (31, 120))
    ]
    assert [r["accepted"] for r in got] == [30, 1, 89]
    assert_same_results(collect(got), collect(want))
    again = post_binary(client, "bin", packed(x[100:110], 100)).json()  # a resend
    assert again["duplicates"] == 10 and again["accepted"] == 0


def test_binary_body_mistakes_are_named(client: Any) -> None:
    r = post_binary(client, "bad", packed(series(5), 0)[:-3])
    assert r.status_code == 422
    err = ErrorResponse.model_validate(r.json()).error
    assert err.field == "body" and "float32" in err.message
    rec = np.frombuffer(packed(series(5), 0), RECORD).copy()
    rec["timestamp"][2] = np.nan
    r = post_binary(client, "bad", rec.tobytes())
    assert r.status_code == 422 and r.json()["error"]["field"] == "points[2].timestamp"
    rec["timestamp"][2] = 2.0
    rec["values"][4, 1] = np.inf
    r = post_binary(client, "bad", rec.tobytes())
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == f"points[4].values.{DEMO_CHANNELS[1]}"
    assert post_binary(client, "bad", packed(series(5), 0), model="nope").status_code == 404
    assert client.get("/v1/streams/bad").status_code == 404  # nothing was stored


def test_openapi_documents_the_bodies(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    one = spec["paths"]["/v1/streams/{stream_id}/points"]["post"]["requestBody"]["content"]
    assert one["application/json"]["schema"] == {"$ref": "#/components/schemas/PointsRequest"}
    assert one[BINARY_TYPE]["schema"]["format"] == "binary"
    many = spec["paths"]["/v1/points"]["post"]["requestBody"]["content"]
    assert many["application/json"]["schema"] == {"$ref": "#/components/schemas/BatchRequest"}
    schemas = spec["components"]["schemas"]
    assert {"PointsRequest", "BatchRequest", "Point", "StreamPoints"} <= set(schemas)
    point = schemas["Point"]
    assert point["additionalProperties"] is False and "values" in point["required"]
