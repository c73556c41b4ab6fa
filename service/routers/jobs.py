"""Jobs for whole exports: POST /v1/jobs (upload), GET /v1/jobs/{id}, GET /v1/jobs/{id}/result,
DELETE /v1/jobs/{id} (cancel, or delete a finished job).

An upload's rows are counted before it is queued (`cxnlp.io.tables.count_rows`: line count,
Parquet metadata, the XLSX sheet's row tags): over `CXNLP_MAX_JOB_ROWS` it is refused with 413,
and over what its API key may have queued or running (`CXNLP_MAX_KEY_ROWS`) with 429."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from cxnlp.io.tables import FORMATS, count_rows, table_format
from cxnlp.io.validate import name_problem
from service.deps import Authorized, State, _presented_key, key_matches, pick_model
from service.errors import ApiError, checked_name, field_error
from service.jobs import Job, JobQueueFull
from service.schemas import JobInfo, ScoreKind
from service.sessions import key_hash

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], dependencies=[Authorized])

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MEDIA_TYPES = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _owner(request: Request) -> str:
    """Who uploads: a hash of the API key (empty with auth off)."""
    presented = _presented_key(request)
    return key_hash(presented) if presented else ""


def _count(path: Path) -> int | None:
    try:
        return count_rows(path)
    except ValueError:  # a zip bomb or not a workbook: the job says so when it runs
        return None


@router.post("", status_code=202, response_model=JobInfo)
async def create_job(
    request: Request,
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
    model: Annotated[
        str | None,
        Form(min_length=1, max_length=200, description="an adapter to classify with"),
    ] = None,
) -> JobInfo:
    """Queue a file for classification; the result has the same format as the upload. With
    `dataset`, the classified rows are also stored in the feedback store (one transaction; the
    job fails, storing nothing, when a row cannot be stored). `model` names an adapter (as in
    /v1/classify; 422 for an unknown one); absent, the served model classifies the file."""
    pick_model(state, model)
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
    if dataset is not None and name_problem(dataset) is not None:
        shutil.rmtree(folder, ignore_errors=True)
        checked_name(dataset, ("body", "dataset"), "the dataset name")
    await run_in_threadpool(_save_upload, file, input_path)
    rows = await run_in_threadpool(_count, input_path)
    settings, owner = state.settings, _owner(request)
    if rows is not None and rows > settings.max_job_rows:
        shutil.rmtree(folder, ignore_errors=True)
        raise ApiError(
            413,
            f"{filename} has {rows} rows; a job takes at most {settings.max_job_rows} "
            "(CXNLP_MAX_JOB_ROWS): split the file",
            [field_error(("body", "file"), "too many rows", "too_many_rows")],
        )
    held = runner.pending_rows(owner)
    if rows is not None and held and held + rows > settings.max_key_rows:
        shutil.rmtree(folder, ignore_errors=True)
        raise ApiError(
            429,
            f"this key already has {held} rows queued or running; with these {rows} it would "
            f"pass its limit of {settings.max_key_rows} (CXNLP_MAX_KEY_ROWS): wait for its jobs "
            "to finish, or cancel one (DELETE /v1/jobs/ID)",
            headers={"Retry-After": "60"},
        )
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
        rows=rows,
        owner=owner,
        adapter=model,
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


@router.delete("/{job_id}", response_model=JobInfo)
async def cancel_job(job_id: str, request: Request, state: State) -> JobInfo:
    """Cancel a queued or running job (a running one stops after the chunk it is on; its partial
    output is removed), or delete a finished one with its result. Only the key that uploaded
    the job (or an admin key) may."""
    job = _job(state, job_id)
    if job.owner and job.owner != _owner(request) and not _is_admin(request, state):
        raise ApiError(404, f"no job {job_id!r}")
    cancelled = await run_in_threadpool(state.jobs.cancel, job_id)
    if cancelled is None:
        raise ApiError(404, f"no job {job_id!r}")
    return JobInfo(**cancelled.public())


def _is_admin(request: Request, state) -> bool:
    presented = _presented_key(request)
    return presented is not None and key_matches(presented, state.admin_keys)
