"""EMTC clustering jobs: submit (JSON arrays, an .npz/.ts upload, or streams' alarm episodes),
follow, cancel. Each job trains in its own process (memory-capped), never in this one."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from fastapi import APIRouter, Path, Request
from starlette.datastructures import UploadFile

from service.auth import ApiKey, Ingester, Reader
from service.clustering.episode_input import episode_input
from service.clustering.inputs import JobInput, from_json, parse_request
from service.clustering.jobs import ClusteringJobs
from service.clustering.multipart_spool import spool_form
from service.clustering.parse_process import (
    StreamsRequest,
    count_ts_unless_zip,
    parse_isolated,
    spool,
)
from service.clustering.schemas import (
    JOB_ID_PATTERN,
    UPLOAD_SCHEMA,
    ClusteringJob,
    request_schema,
)
from service.clustering.uploads import from_upload
from service.deps import ServicesDep
from service.errors import InvalidPoint, UnsupportedMedia
from service.responses import OrjsonResponse
from service.schemas import ErrorResponse

router = APIRouter(prefix="/v1/clustering", tags=["clustering"], dependencies=[ApiKey])

_DESCRIPTIONS = {
    400: "Malformed request (body is not JSON, or a broken multipart form)",
    401: "Missing or invalid API key",
    403: "The key's role or tenant does not cover this request",
    404: "Unknown job (or, for episode jobs, unknown stream)",
    413: "Body, N, T, D or N·T·D over its TAD_CLUSTERING_* limit; `field` names it",
    415: "Neither application/json nor multipart/form-data",
    422: "Invalid series, labels, options or upload; `field` names it",
    429: "The job queue is full (TAD_CLUSTERING_MAX_QUEUE); retry later",
    503: "method emtc unavailable here (no torch), or the store is unreachable",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorResponse, "description": _DESCRIPTIONS[c]} for c in codes}


JobIdPath = Path(pattern=JOB_ID_PATTERN, description="32 hex digits, from POST")


def _jobs(request: Request) -> ClusteringJobs:
    jobs: ClusteringJobs = request.app.state.clustering
    return jobs


async def _from_form(request: Request, jobs: ClusteringJobs) -> JobInput:
    """An upload: a small form parsed here as before; a large one split in a worker thread
    (multipart_spool), counted, then parsed in its own process (parse_process)."""
    body = await request.body()
    if len(body) > jobs.settings.clustering_parse_in_process_bytes:
        ctype = request.headers.get("content-type", "")
        form = await asyncio.to_thread(spool_form, body, ctype)
        del body
        fields: dict[str, Any] = {
            k: form.fields.get(k) for k in ("n_clusters", "options", "method")
        }
        fields["filename"] = form.filename
        try:
            if not (form.filename or "").lower().endswith(".npz"):
                await asyncio.to_thread(count_ts_unless_zip, form.path, jobs.limits)
            return await parse_isolated(
                "upload", form.path, fields, jobs.limits, **_parse_args(jobs)
            )
        finally:
            form.path.unlink(missing_ok=True)
    async with request.form(max_files=1, max_fields=5) as small:
        upload = small.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidPoint("upload the data as the form field 'file'", field="file")
        values = {}
        for name in ("n_clusters", "options", "method"):
            value = small.get(name)
            if value is not None and not isinstance(value, str):
                raise InvalidPoint(f"'{name}' must be a plain form field", field=name)
            values[name] = value
        data = await upload.read()
        filename = upload.filename
    return await asyncio.to_thread(
        from_upload,
        data,
        filename,
        values["n_clusters"],
        values["options"],
        jobs.limits,
        values["method"],
    )


async def _from_json(body: bytes, jobs: ClusteringJobs, services: Any, who: Any) -> JobInput:
    """A JSON job: a small body parsed here, a large one in its own process (parse_process)."""
    if len(body) > jobs.settings.clustering_parse_in_process_bytes:
        path = await asyncio.to_thread(spool, io.BytesIO(body))
        try:
            return await parse_isolated("json", path, {}, jobs.limits, **_parse_args(jobs))
        except StreamsRequest:
            pass  # a long list of stream ids: parsed here, below
        finally:
            path.unlink(missing_ok=True)
    req = await asyncio.to_thread(parse_request, body, jobs.limits)
    if req.streams is not None:
        for i, sid in enumerate(req.streams):
            who.require_stream(sid, f"streams[{i}]")
        return await episode_input(services.store, req, jobs.limits)
    return await asyncio.to_thread(from_json, req, jobs.limits)


def _parse_args(jobs: ClusteringJobs) -> dict[str, Any]:
    return {"timeout_s": jobs.settings.clustering_parse_timeout_s, "gate": jobs.parsers}


@router.post(
    "/jobs",
    status_code=202,
    response_model=ClusteringJob,
    responses={
        202: {
            "description": "Queued; poll the job at the Location header",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **_errors(400, 401, 403, 404, 413, 415, 422, 429, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": request_schema()},
                "multipart/form-data": {"schema": UPLOAD_SCHEMA},
            },
        }
    },
)
async def submit_job(request: Request, services: ServicesDep, who: Ingester) -> OrjsonResponse:
    """Queue a clustering job (`method`: minirocket, the default, or emtc): JSON `series`
    [N][T_i][D] (+ `labels`), an uploaded
    `.npz` (X [N, T, D], optional y) or `.ts` as multipart field `file`, or `streams` whose
    recorded alarm episodes to cluster. Answers 202 with the job; poll its Location."""
    jobs = _jobs(request)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        job = await _from_form(request, jobs)
    elif ctype in ("", "application/json") or ctype.endswith("+json"):
        job = await _from_json(await request.body(), jobs, services, who)
    else:
        raise UnsupportedMedia(
            f"send application/json or multipart/form-data, not {ctype!r}", field="Content-Type"
        )
    jobs.check_available(job.method)
    record = await asyncio.to_thread(jobs.submit, job, who.tenant)
    return OrjsonResponse(
        record.view(),
        status_code=202,
        headers={"Location": f"/v1/clustering/jobs/{record.job_id}"},
    )


@router.get("/jobs/{job_id}", response_model=ClusteringJob, responses=_errors(401, 404, 422, 503))
async def get_job(request: Request, who: Reader, job_id: str = JobIdPath) -> OrjsonResponse:
    """Status, progress (epoch, loss) and, once succeeded, the result."""
    record = await asyncio.to_thread(_jobs(request).get, job_id, who.tenant)
    return OrjsonResponse(record.view())


@router.delete(
    "/jobs/{job_id}",
    response_model=ClusteringJob,
    responses={
        202: {"model": ClusteringJob, "description": "Running: asked to stop"},
        **_errors(401, 403, 404, 422, 503),
    },
)
async def cancel_job(request: Request, who: Ingester, job_id: str = JobIdPath) -> OrjsonResponse:
    """Cancel: a queued job at once (200, cancelled); a running one stops before its next
    batch (202, `cancel_requested`); a finished job is left as it is (200)."""
    record = await asyncio.to_thread(_jobs(request).cancel, job_id, who.tenant)
    return OrjsonResponse(record.view(), status_code=202 if record.status == "running" else 200)
