"""Batch jobs for exports too big for one request: the uploaded file is classified by
`cxnlp.io.batch.classify_file` (the code the `cxnlp classify` verb runs) in a background thread.

Each job lives in its own directory under the jobs directory: the upload, the result once done,
and `job.json` with its state, so a restarted service still answers for finished jobs and runs
again the jobs it had not finished, reusing the chunks a killed run had written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cxnlp.io.batch import classify_file
from service.loading import LoadedModel

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
STATUSES = ("queued", "running", "succeeded", "failed")


class JobQueueFull(RuntimeError):
    """Too many jobs are waiting to run."""


@dataclass
class Job:
    id: str
    filename: str
    input_path: str
    output_path: str
    text_col: str
    id_col: str
    # With a dataset, the result is stored in the feedback store once classified.
    dataset: str | None = None
    date_col: str | None = "created_at"
    score_col: str | None = None
    score_kind: str | None = None
    stored: dict[str, Any] | None = None
    status: str = "queued"
    model: str | None = None
    rows_done: int = 0
    rows: int | None = None
    errors: int | None = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    def public(self) -> dict[str, Any]:
        """What the API shows: no server paths."""
        data = asdict(self)
        del data["input_path"], data["output_path"]
        return data


class _CountingModel:
    """Passes `predict` through and counts the texts done, for the job's progress."""

    def __init__(self, model: Any, job: Job) -> None:
        self._model, self._job = model, job

    def __getattr__(self, name: str) -> Any:
        # The model's identity (source_, topic_tagger) decides whether a resumed job may reuse
        # its finished parts: a part made by another model must not be mixed in.
        return getattr(self._model, name)

    def predict(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list:
        predictions = self._model.predict(texts, langs)
        self._job.rows_done += len(texts)
        return predictions


class JobRunner:
    """Jobs run one at a time, in submission order, in one background thread."""

    def __init__(
        self,
        jobs_dir: Path,
        current_model: Callable[[], LoadedModel],
        *,
        max_queued: int = 16,
        chunk_rows: int = 2000,
        store_result: Callable[[Job], dict[str, Any]] | None = None,
        ray_address: str | None = None,
        ray_min_bytes: int = 64 * 1024 * 1024,
        ray_workers: int | None = None,
    ) -> None:
        self.jobs_dir = Path(jobs_dir)
        self.store_result = store_result
        self.current_model = current_model
        self.chunk_rows = chunk_rows
        # Uploads of at least ray_min_bytes run on Ray (cxnlp.io.ray_engine) when an address is set.
        self.ray_address, self.ray_min_bytes, self.ray_workers = (
            ray_address,
            ray_min_bytes,
            ray_workers,
        )
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="cxnlp-jobs", daemon=True)
        self._stopping = False

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._load_existing()
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the running job; jobs still queued stay `queued` on disk and are reported
        failed by the next start."""
        self._stopping = True
        with contextlib.suppress(queue.Full):  # a full queue: the runner sees _stopping instead
            self._queue.put_nowait(None)
        self._thread.join(timeout)

    def new_job_dir(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        path = self.jobs_dir / job_id
        path.mkdir(parents=True)
        return job_id, path

    def submit(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.id] = job
            self._save(job)
        try:
            self._queue.put_nowait(job.id)
        except queue.Full:
            with self._lock:
                del self._jobs[job.id]
            shutil.rmtree(Path(job.input_path).parent, ignore_errors=True)
            raise JobQueueFull(f"{self._queue.qsize()} jobs are already waiting") from None
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self) -> None:
        while (job_id := self._queue.get()) is not None and not self._stopping:
            job = self.get(job_id)
            if job is not None:
                self._execute(job)

    def _execute(self, job: Job) -> None:
        handle = self.current_model()  # the model served when the job starts, for all its rows
        job.status, job.model, job.started_at = "running", handle.name, time.time()
        self._save(job)
        try:
            if self._on_ray(job):
                stats = self._classify_on_ray(handle.model, job)
            else:
                stats = classify_file(
                    _CountingModel(handle.model, job),
                    job.input_path,
                    job.output_path,
                    text_col=job.text_col,
                    id_col=job.id_col,
                    chunk_rows=self.chunk_rows,
                    # The parts a killed run finished are reused when the input, settings and
                    # model are the same (classify_file checks), else the job starts over.
                    resume=True,
                    progress=False,
                )
        except (KeyError, ValueError, FileNotFoundError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            self._finish(job, "failed", error=str(message).replace(job.input_path, job.filename))
        except Exception as exc:  # noqa: BLE001 - a job failing must not stop the runner
            logger.exception("job %s failed", job.id)
            self._finish(job, "failed", error=f"{type(exc).__name__}: {exc}")
        else:
            job.rows_done, job.rows, job.errors = stats.rows, stats.rows, stats.errors
            if job.dataset and self.store_result is not None:
                try:
                    job.stored = self.store_result(job)
                except Exception as exc:  # noqa: BLE001 - reported on the job
                    logger.exception("job %s: storing failed", job.id)
                    message = getattr(exc, "message", None) or str(exc)
                    self._finish(
                        job,
                        "failed",
                        error="classified, but storing in the feedback store failed (nothing "
                        f"was stored): {message}".replace(job.output_path, job.filename),
                    )
                    return
            self._finish(job, "succeeded")

    def _on_ray(self, job: Job) -> bool:
        return bool(self.ray_address) and Path(job.input_path).stat().st_size >= self.ray_min_bytes

    def _classify_on_ray(self, model: Any, job: Job) -> Any:
        # The actors get the model itself; progress comes back per partition.
        def done(rows: int) -> None:
            job.rows_done += rows

        logger.info("job %s runs on Ray (%s)", job.id, self.ray_address)
        return classify_file(
            model,
            job.input_path,
            job.output_path,
            text_col=job.text_col,
            id_col=job.id_col,
            chunk_rows=self.chunk_rows,
            # As on the local engine: a killed job's finished parts are reused when the input,
            # settings and model are the same.
            resume=True,
            progress=False,
            engine="ray",
            address=None if self.ray_address == "local" else self.ray_address,
            workers=self.ray_workers,
            on_rows=done,
        )

    def _finish(self, job: Job, status: str, error: str | None = None) -> None:
        job.status, job.error, job.finished_at = status, error, time.time()
        self._save(job)
        logger.info("job %s %s%s", job.id, status, f": {error}" if error else "")

    def _save(self, job: Job) -> None:
        path = Path(job.input_path).parent / JOB_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(job), ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)

    def _load_existing(self) -> None:
        """Jobs of an earlier run: finished ones answer again; queued and running ones (the service
        was stopped or killed) are queued again, oldest first, and a running one goes on from the
        chunks it had finished. Those the queue has no room for are reported failed."""
        unfinished: list[Job] = []
        for path in sorted(self.jobs_dir.glob(f"*/{JOB_FILE}")):
            try:
                job = Job(**json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                logger.warning("skipping unreadable job state %s", path)
                continue
            if job.status in ("queued", "running"):
                unfinished.append(job)
            self._jobs[job.id] = job
        for job in sorted(unfinished, key=lambda j: j.created_at):
            try:
                self._queue.put_nowait(job.id)
            except queue.Full:
                job.status, job.finished_at = "failed", time.time()
                job.error = "the service stopped before the job finished; submit it again"
            else:
                logger.info(
                    "job %s was %s when the service stopped: queued again", job.id, job.status
                )
                job.status, job.started_at = "queued", None
            self._save(job)
