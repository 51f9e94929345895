"""Malformed and oversized clustering requests are refused with a 4xx that names the field, and
nothing is queued."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.service.clustering_helpers import SMALL, npz_bytes, three_groups

JOBS = "/v1/clustering/jobs"
X, Y = three_groups(n_per=4, t=8)  # N = 12, T = 8, D = 2
GOOD = {"series": X.tolist(), "n_clusters": 3, "method": "emtc"}


@pytest.fixture(params=["thread", "process"])
def client(request: pytest.FixtureRequest, make_client: Callable[..., Any]) -> Any:
    """Every input parsed in the service's thread, then in its own process (issue 25): the
    same refusal, field and kind either way."""
    return make_client(**PARSE_IN[request.param])


PARSE_IN: dict[str, dict[str, Any]] = {
    "thread": {},
    "process": {"clustering_parse_in_process_bytes": 0},
}


def error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err: dict[str, Any] = r.json()["error"]
    return err


def with_series(series: Any, **extra: Any) -> dict[str, Any]:
    return {**GOOD, "series": series, **extra}


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (with_series([]), "series", "at least 1"),
        (with_series([[1.0, 2.0]]), "series[0][0]", "valid list"),
        (with_series([[[1.0, "2"]]]), "series[0][0][1]", "valid number"),
        (with_series([[[1.0, True]]]), "series[0][0][1]", "valid number"),
        (with_series([[[1.0], [2.0, 3.0]]] * 3), "series[0]", "different numbers of values"),
        (with_series([[[1.0], [2.0]], [[1.0, 2.0], [3.0, 4.0]]]), "series", "first series has 1"),
        (with_series([[[1.0]], [[2.0]], [[3.0]]]), "series", "at least 2 time steps"),
        (with_series([[[1e39, 0.0], [0.0, 0.0]]] * 3), "series[0]", "finite 32-bit"),
        ({**GOOD, "n_clusters": 13}, "n_clusters", "more than the 12 series"),
        ({**GOOD, "n_clusters": 1}, "n_clusters", "greater than or equal to 2"),
        ({**GOOD, "n_clusters": 2.5}, "n_clusters", "valid integer"),
        ({**GOOD, "labels": [0, 1]}, "labels", "2 labels for 12 series"),
        ({**GOOD, "labels": [0.5] * 12}, "labels[0]", "valid"),
        ({**GOOD, "options": {"epochs": 0}}, "options.epochs", "greater than or equal to 1"),
        ({**GOOD, "options": {"epochs": 201}}, "options.epochs", "TAD_CLUSTERING_MAX_EPOCHS"),
        ({**GOOD, "options": {"learning_rate": 1}}, "options.learning_rate", "Extra inputs"),
        ({**GOOD, "options": {"hidden": "64"}}, "options.hidden", "valid integer"),
        ({**GOOD, "options": {"lr": None}}, "options", "'lr' must not be null"),
        ({**GOOD, "streams": ["s"]}, None, "exactly one of 'series'"),
        ({"n_clusters": 2}, None, "exactly one of 'series'"),
        ({**GOOD, "start": 1.0}, None, "'start' and 'end' go with 'streams'"),
        ({"streams": ["s"], "n_clusters": 2, "labels": [1]}, None, "'labels' go with 'series'"),
        ([1, 2, 3], None, "valid dictionary"),
    ],
)
def test_malformed_json_is_422_naming_the_field(
    client: Any, body: Any, field: str | None, says: str
) -> None:
    err = error(client.post(JOBS, json=body), 422)
    assert err["field"] == field and says in err["message"], err


def test_not_json_is_400_and_other_media_types_415(client: Any) -> None:
    err = error(client.post(JOBS, content=b"{", headers={"content-type": "application/json"}), 400)
    assert err["field"] == "body" and err["type"] == "malformed"
    err = error(client.post(JOBS, content=b"x", headers={"content-type": "text/csv"}), 415)
    assert err["field"] == "Content-Type"


@pytest.mark.parametrize(
    ("settings", "body", "field", "variable"),
    [
        ({"clustering_max_n": 11}, GOOD, "series", "TAD_CLUSTERING_MAX_N"),
        ({"clustering_max_t": 7}, GOOD, "series[0]", "TAD_CLUSTERING_MAX_T"),
        ({"clustering_max_d": 1}, GOOD, "series", "TAD_CLUSTERING_MAX_D"),
        ({"clustering_max_values": 191}, GOOD, "series", "TAD_CLUSTERING_MAX_VALUES"),
        ({"clustering_max_t": 9}, {**GOOD, "options": {"length": 10}}, "series", "MAX_T"),
        ({"clustering_max_bytes": 1024}, GOOD, "body", "TAD_CLUSTERING_MAX_BYTES"),
    ],
)
@pytest.mark.parametrize("parse_in", PARSE_IN)
def test_limits_are_413_naming_field_and_variable(
    make_client: Callable[..., Any],
    settings: dict[str, Any],
    body: dict[str, Any],
    field: str,
    variable: str,
    parse_in: str,
) -> None:
    c = make_client(**settings, **PARSE_IN[parse_in])
    err = error(c.post(JOBS, json=body), 413)
    assert err["field"] == field and variable in err["message"], err


def test_clustering_body_limit_is_separate_from_the_points_limit(
    make_client: Callable[..., Any],
) -> None:
    c = make_client(max_body_bytes=1024, clustering_max_bytes=1 << 20)
    x, _ = three_groups()
    assert len(str(x.tolist())) > 1024
    r = c.post(
        JOBS, json={"series": x.tolist(), "n_clusters": 3, "method": "emtc", "options": SMALL}
    )
    assert r.status_code == 202, r.text
    err = error(c.post("/v1/streams/s/points", content=b"[" * 2000), 413)
    assert "TAD_MAX_BODY_BYTES" in err["message"]


def upload(client: Any, data: bytes, name: str = "x.npz", n_clusters: str = "3") -> Any:
    return client.post(JOBS, files={"file": (name, data)}, data={"n_clusters": n_clusters})


def test_npz_with_pickled_objects_is_refused(client: Any) -> None:
    labels = np.array([{"class": i} for i in range(12)], dtype=object)
    err = error(upload(client, npz_bytes(X=X, y=labels)), 422)
    assert err["type"] == "pickle" and err["field"] == "file.y"
    err = error(upload(client, npz_bytes(X=np.array([object()] * 2, dtype=object))), 422)
    assert err["type"] == "pickle" and err["field"] == "file.X"


def test_npz_member_that_is_a_raw_pickle_is_refused(client: Any) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("X.npy", pickle.dumps(X))  # not an .npy at all
    err = error(upload(client, buf.getvalue()), 422)
    assert err["field"] == "file.X" and "unreadable" in err["message"]


@pytest.mark.parametrize(
    ("arrays", "field", "says"),
    [
        ({"y": Y}, "file", "no array 'X'"),
        ({"X": X[0]}, "file.X", "[N, T, D]"),
        ({"X": X.astype(bool)}, "file.X", "numeric"),
        ({"X": X, "y": Y[:5]}, "file.y", "[N] ints or strings"),
        ({"X": X, "y": Y.astype(float)}, "file.y", "[N] ints or strings"),
        ({"X": np.where(np.arange(8)[None, :, None] == 3, np.nan, X)}, "file.X[0]", "finite"),
        ({"X": X[:0]}, "file.X", "N = 0"),  # was a 500 (IndexError)
        ({"X": X[:, :, :0]}, "file.X", "D = 0"),  # was accepted, then failed in the worker
    ],
)
def test_bad_npz_arrays_are_422(
    client: Any, arrays: dict[str, np.ndarray], field: str, says: str
) -> None:
    err = error(upload(client, npz_bytes(**arrays)), 422)
    assert err["field"] == field and says in err["message"], err


def test_npz_shape_is_checked_before_the_data_is_read(make_client: Callable[..., Any]) -> None:
    """A compressed archive that would inflate to 800 MB is refused from its header alone."""
    c = make_client(clustering_max_n=1000)
    buf = io.BytesIO()
    np.savez_compressed(buf, X=np.zeros((100_000, 1000, 1), dtype=np.float64))
    assert len(buf.getvalue()) < 1_000_000
    err = error(upload(c, buf.getvalue()), 413)
    assert err["field"] == "file.X" and "TAD_CLUSTERING_MAX_N" in err["message"]


def test_bad_uploads(client: Any) -> None:
    err = error(upload(client, b"PK\x03\x04 not really a zip"), 422)
    assert err["field"] == "file" and "not an .npz" in err["message"]
    err = error(upload(client, b"@data\n1,2:3\n", name="x.ts"), 422)
    assert err["type"] == "ts_format" and "x.ts:2" in err["message"]
    err = error(upload(client, b"@data\n1,zwei\n", name="x.ts"), 422)
    assert "x.ts:2: not a number" in err["message"]
    err = error(upload(client, b"\xff\xfe", name="x.ts"), 422)
    assert "UTF-8" in err["message"]
    err = error(upload(client, npz_bytes(X=X), n_clusters="three"), 422)
    assert err["field"] == "n_clusters"
    r = client.post(JOBS, files={"data": ("x.npz", npz_bytes(X=X))}, data={"n_clusters": "3"})
    assert error(r, 422)["field"] == "file"
    r = client.post(
        JOBS, files={"file": ("x.npz", npz_bytes(X=X))}, data={"n_clusters": "3", "options": "{"}
    )
    assert error(r, 422)["field"].startswith("options")


def test_unknown_and_malformed_job_ids(client: Any) -> None:
    for method in (client.get, client.delete):
        err = error(method(f"{JOBS}/{'0' * 32}"), 404)
        assert err["type"] == "unknown_job" and err["field"] == "job_id"
        err = error(method(f"{JOBS}/not-a-job"), 422)
        assert err["field"] == "job_id"


def test_nothing_is_queued_by_refused_requests(make_client: Callable[..., Any]) -> None:
    c = make_client(clustering_workers=0, clustering_max_queue=1)
    for body in (with_series([]), {**GOOD, "n_clusters": 40}, {**GOOD, "labels": [1]}):
        assert c.post(JOBS, json=body).status_code == 422
    assert c.post(JOBS, json=GOOD).status_code == 202  # the one queue slot is still free
