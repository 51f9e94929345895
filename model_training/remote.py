"""`tad train --url`: train on a running service's recorded streams and follow the job.

The trainer CLI talking to the service over its HTTP API (`POST /v1/training/jobs`, then
`GET` until the job ends), so a user gets a model from what they already stream without a
CSV export or torch on their side; nothing here imports the service's code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

FINISHED = ("succeeded", "failed", "cancelled")


class RemoteTrainingError(RuntimeError):
    """The service refused the job, or the job did not succeed (the message says why)."""


def _refusal(r: httpx.Response) -> str:
    try:
        err = r.json()["error"]
        field = f" ({err['field']})" if err.get("field") else ""
        return f"the service answered {r.status_code}{field}: {err['message']}"
    except (ValueError, KeyError, TypeError):
        return f"the service answered {r.status_code}: {r.text[:200]}"


def train_remote(
    url: str,
    model: str,
    streams: list[str],
    options: dict[str, Any],
    start: float | None = None,
    end: float | None = None,
    api_key: str | None = None,
    poll_s: float = 0.5,
    progress: bool = True,
    upload: tuple[Path, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Submit the job (on `streams`, or with `upload` = (file, table options) on that file,
    sent to `POST /v1/training/uploads`), show its epochs as they pass, return the
    finished job's JSON."""
    body: dict[str, Any] = {"model": model, "streams": streams, "options": options}
    if start is not None:
        body["from"] = start
    if end is not None:
        body["to"] = end
    headers = {"X-API-Key": api_key} if api_key else {}
    try:
        with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30.0) as c:
            if upload is not None:
                path, table = upload
                spec = {"model": model, "options": options, "table": table}
                with path.open("rb") as fh:
                    r = c.post(
                        "/v1/training/uploads",
                        files={"file": (path.name, fh)},
                        data={"spec": json.dumps(spec)},
                        timeout=300.0,
                    )
            else:
                r = c.post("/v1/training/jobs", json=body)
            if r.status_code != 202:
                raise RemoteTrainingError(_refusal(r))
            job = r.json()
            bar = tqdm(total=options.get("epochs"), desc=f"train {model}", disable=not progress)
            with bar:
                while job["status"] not in FINISHED:
                    time.sleep(poll_s)
                    r = c.get(f"/v1/training/jobs/{job['job_id']}")
                    if r.status_code != 200:
                        raise RemoteTrainingError(_refusal(r))
                    job = r.json()
                    p = job.get("progress") or {}
                    if p.get("epoch"):
                        bar.update(int(p["epoch"]) - bar.n)
                        bar.set_postfix(auc=p.get("fault_auc"), val=p.get("loss"))
    except httpx.HTTPError as exc:
        raise RemoteTrainingError(f"cannot reach {url}: {exc}") from exc
    if job["status"] != "succeeded":
        raise RemoteTrainingError(f"job {job['job_id']} {job['status']}: {job.get('error')}")
    return dict(job)
