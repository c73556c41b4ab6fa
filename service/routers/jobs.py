"""Jobs for whole exports: POST /v1/jobs (upload), GET /v1/jobs/{id}, GET /v1/jobs/{id}/result."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from cxnlp.io.tables import FORMATS, table_format
from service.deps import Authorized, State
from service.errors import ApiError, field_error
from service.jobs import Job, JobQueueFull
from service.schemas import JobInfo, ScoreKind

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Authorized])

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MEDIA_TYPES = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@router.post("", status_code=202, response_model=JobInfo)
async def create_job(
    state: State,
    file: Annotated[UploadFile, File(description="CSV, TSV, JSONL, Parquet or XLSX export")],
    text_col: Annotated[str, Form(min_length=1)] = "text",
    id_col: Annotated[str, Form(min_length=1)] = "id",
    dataset: Annotated[
        str | None,
        Form(min_length=1, max_length=200, description="store the result under this dataset"),
    ] = None,
    date_col: Annotated[str, Form(min_length=1, description="with dataset: the date column")] = (
        "created_at"
    ),
    score_col: Annotated[str | None, Form(min_length=1)] = None,
    score_kind: Annotated[ScoreKind | None, Form()] = None,
) -> JobInfo:
    """Queue a file for classification; the result has the same format as the upload. With
    `dataset`, the classified rows are also stored in the feedback store (one transaction; the
    job fails, storing nothing, when a row cannot be stored)."""
    if (score_col is None) != (score_kind is None):
        raise ApiError(
            422,
            "invalid request: score_col and score_kind go together",
            [field_error(("body", "score_kind"), "needs score_col", "missing")],
        )
    filename = Path(file.filename or "").name
    suffix = Path(filename).suffix.lower()
    try:
        table_format(filename or "upload")
    except ValueError:
        raise ApiError(
            415,
            f"unsupported file type {suffix or '(none)'!r}; upload one of {sorted(FORMATS)}",
            [field_error(("body", "file"), "unsupported file type", "unsupported_file_type")],
        ) from None
    runner = state.jobs
    job_id, folder = runner.new_job_dir()
    input_path, output_path = folder / f"input{suffix}", folder / f"result{suffix}"
    await run_in_threadpool(_save_upload, file, input_path)
    job = Job(
        id=job_id,
        filename=filename,
        input_path=str(input_path),
        output_path=str(output_path),
        text_col=text_col,
        id_col=id_col,
        dataset=dataset,
        date_col=date_col,
        score_col=score_col,
        score_kind=score_kind,
    )
    try:
        runner.submit(job)
    except JobQueueFull as exc:
        retry = str(state.settings.retry_after_s)
        raise ApiError(
            503, f"too many jobs ({exc}); retry later", headers={"Retry-After": retry}
        ) from None
    return JobInfo(**job.public())


def _save_upload(upload: UploadFile, path: Path) -> None:
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out, length=1 << 20)


def _job(state, job_id: str) -> Job:
    job = state.jobs.get(job_id) if _JOB_ID.match(job_id) else None
    if job is None:
        raise ApiError(404, f"no job {job_id!r}")
    return job


@router.get("/{job_id}", response_model=JobInfo)
async def get_job(job_id: str, state: State) -> JobInfo:
    """Status (queued, running, succeeded, failed), rows done so far, and the error if any."""
    return JobInfo(**_job(state, job_id).public())


@router.get("/{job_id}/result")
async def get_result(job_id: str, state: State) -> FileResponse:
    """The classified file; 409 while the job is not finished (or failed)."""
    job = _job(state, job_id)
    if job.status != "succeeded":
        reason = f": {job.error}" if job.error else ""
        raise ApiError(409, f"job {job_id} is {job.status}, it has no result{reason}")
    stem = Path(job.filename).stem or "result"
    suffix = Path(job.output_path).suffix
    return FileResponse(
        job.output_path,
        media_type=MEDIA_TYPES.get(table_format(job.output_path), "application/octet-stream"),
        filename=f"{stem}_labeled{suffix}",
    )
