"""Training jobs: a new version of a model trained from streams' recorded history (issue 26).
Admin keys only; each job trains in its own process (memory-capped), never in this one."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import ValidationError

from service.auth import AdminKey, ApiKey, Principal
from service.clustering.multipart_spool import spool_form
from service.clustering.schemas import JOB_ID_PATTERN
from service.deps import ServicesDep
from service.errors import InvalidPoint, UnsupportedMedia
from service.responses import OrjsonResponse, errors
from service.training.input import training_table
from service.training.jobs import TrainingJobs, view
from service.training.schemas import TrainingJob, TrainingJobCreate, TrainingUploadCreate

router = APIRouter(prefix="/v1/training", tags=["training"], dependencies=[ApiKey])
Administrator = Annotated[Principal, AdminKey]
JobIdPath = Path(pattern=JOB_ID_PATTERN, description="32 hex digits, from POST")


def _jobs(request: Request) -> TrainingJobs:
    jobs: TrainingJobs = request.app.state.training
    return jobs


@router.post(
    "/jobs",
    status_code=202,
    response_model=TrainingJob,
    responses={
        202: {
            "description": "Queued; poll the job at the Location header",
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **errors(400, 401, 403, 404, 409, 422, 429, 503),
    },
)
async def submit_training(
    body: TrainingJobCreate, request: Request, services: ServicesDep, who: Administrator
) -> OrjsonResponse:
    """Train a new version of `model` on the recorded history of `streams` (TAD_HISTORY_POINTS
    must be set; `from`/`to` bound the time range; recorded alarms are left out unless
    `include_alarms`), with `tad train`'s options. Answers 202 with the job; once it has
    succeeded the new version is loaded (probe included) and streams can move to it with
    `PUT /v1/streams/{id}` `{"model": …}`."""
    jobs = _jobs(request)
    jobs.check_available()
    table = await training_table(services, body, who)
    record = await asyncio.to_thread(jobs.submit, body, table, who.tenant)
    return OrjsonResponse(
        view(record), status_code=202, headers={"Location": f"/v1/training/jobs/{record.job_id}"}
    )


UPLOAD_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")


@router.post(
    "/uploads",
    status_code=202,
    response_model=TrainingJob,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "spec"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "spec": {
                                "type": "string",
                                "description": "TrainingUploadCreate as JSON: model, options, "
                                "table (tad train's table options), promote_if",
                            },
                        },
                    }
                }
            },
        }
    },
    responses=errors(400, 401, 403, 413, 415, 422, 429, 503),
)
async def submit_training_file(request: Request, who: Administrator) -> OrjsonResponse:
    """Train a new version of a model on an uploaded CSV or Parquet table (multipart: `file`,
    and `spec` as JSON), read as `tad train --kind table` reads it — in the job's process, so
    a file that cannot be read fails the job with the reader's message. Body limit:
    TAD_CLUSTERING_MAX_BYTES."""
    jobs = _jobs(request)
    jobs.check_available()
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise UnsupportedMedia(
            f"send multipart/form-data with 'file' and 'spec', not {ctype!r}", field="Content-Type"
        )
    body = await request.body()
    form = await asyncio.to_thread(spool_form, body, ctype)
    del body
    try:
        filename = form.filename or ""
        if not filename.lower().endswith(UPLOAD_SUFFIXES):
            raise InvalidPoint(
                f"upload a table ({', '.join(UPLOAD_SUFFIXES)}), not {filename!r}", field="file"
            )
        spec_text = form.fields.get("spec")
        if spec_text is None:
            raise InvalidPoint("give the job as the form field 'spec' (JSON)", field="spec")
        try:
            spec = TrainingUploadCreate.model_validate_json(spec_text)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise InvalidPoint(
                f"{err['msg']}", field=f"spec.{loc}" if loc else "spec", kind="invalid"
            ) from None
        data = await asyncio.to_thread(form.path.read_bytes)
    finally:
        form.path.unlink(missing_ok=True)
    record = await asyncio.to_thread(jobs.submit_file, spec, filename, data, who.tenant)
    return OrjsonResponse(
        view(record), status_code=202, headers={"Location": f"/v1/training/jobs/{record.job_id}"}
    )


@router.get("/jobs/{job_id}", response_model=TrainingJob, responses=errors(401, 403, 404, 422, 503))
async def get_training(
    request: Request, who: Administrator, job_id: str = JobIdPath
) -> OrjsonResponse:
    """Status, progress (epoch, validation loss, the stopping rule's fault AUC) and, once
    succeeded, the bundle written."""
    return OrjsonResponse(view(await asyncio.to_thread(_jobs(request).get, job_id, who.tenant)))


@router.delete(
    "/jobs/{job_id}",
    response_model=TrainingJob,
    responses={
        202: {"model": TrainingJob, "description": "Running: asked to stop"},
        **errors(401, 403, 404, 422, 503),
    },
)
async def cancel_training(
    request: Request, who: Administrator, job_id: str = JobIdPath
) -> OrjsonResponse:
    """Cancel: a queued job at once (200); a running one's process is stopped (202)."""
    record = await asyncio.to_thread(_jobs(request).cancel, job_id, who.tenant)
    status: Any = 202 if record.status == "running" else 200
    return OrjsonResponse(view(record), status_code=status)
