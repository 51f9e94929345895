"""Training on an uploaded table (issue 26, item 2): `POST /v1/training/uploads` with a
CSV as `tad train --kind table` reads it; the file is read in the job's process, so a bad one
fails the job with the reader's message, and the request itself is checked at once."""

from __future__ import annotations

import io
import json
from typing import Any

from service.demo import DEMO_CHANNELS
from tests.service.test_training_jobs import SMALL, finished, serving
from tests.support.data import series
from tests.support.processes import wait_for

URL = "/v1/training/uploads"


def table(n: int, bad_row: int | None = None) -> bytes:
    out = io.StringIO()
    out.write("time," + ",".join(DEMO_CHANNELS) + "\n")
    for i, row in enumerate(series(n, anomaly=None, seed=8).tolist()):
        cells = [repr(v) for v in row]
        if i == bad_row:
            cells[1] = "n/a?"
        out.write(f"{1_700_000_000 + i}," + ",".join(cells) + "\n")
    return out.getvalue().encode()


def post(c: Any, data: bytes, spec: Any, name: str = "plant.csv") -> Any:
    fields = {} if spec is None else {"spec": json.dumps(spec)}
    return c.post(URL, files={"file": (name, data, "text/csv")}, data=fields)


def test_an_uploaded_csv_trains_a_served_model(make_client: Any) -> None:
    c = make_client()
    r = post(c, table(1500), {"model": "from-csv", "options": SMALL})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["input"] == {"file": "plant.csv", "bytes": len(table(1500))}
    done = finished(c, job["job_id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["points"] == 1500
    wait_for(lambda: serving(c, "from-csv"), 60, "the model to load")
    (m,) = [m for m in c.get("/v1/models").json()["models"] if m["name"] == "from-csv"]
    assert m["channels"] == list(DEMO_CHANNELS)  # the table's columns, the time column not one


def test_upload_requests_are_checked_and_a_bad_file_fails_its_job(make_client: Any) -> None:
    c = make_client()
    spec = {"model": "m", "options": SMALL}
    r = post(c, table(300), spec, name="data.npz")
    assert r.status_code == 422 and r.json()["error"]["field"] == "file", r.text
    r = post(c, table(300), None)
    assert r.status_code == 422 and r.json()["error"]["field"] == "spec", r.text
    r = post(c, table(300), {**spec, "options": {"epochs": 0}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "spec.options.epochs", r.text
    r = c.post(URL, json=spec)
    assert r.status_code == 415, r.text
    assert c.get(URL).status_code == 405  # a resource of its own, not a job id
    r = post(c, table(600, bad_row=100), spec)  # read in the job: the job fails, naming it
    assert r.status_code == 202, r.text
    done = finished(c, r.json()["job_id"])
    assert done["status"] == "failed", done
    assert "plant.csv: column 'pressure': line 102" in done["error"] and "/tmp" not in done["error"]
