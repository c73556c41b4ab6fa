"""Batch jobs for exports too big for one request: the uploaded file is classified by
`cxnlp.io.batch.classify_file` (the code the `cxnlp classify` verb runs) in a background thread.

Each job lives in its own directory under the jobs directory: the upload, the result once done,
and `job.json` with its state, so a restarted service still answers for finished jobs and runs
again the jobs it had not finished, reusing the chunks a killed run had written.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cxnlp.feedback.records import model_identity
from cxnlp.io.batch import classify_file
from service.loading import LoadedModel

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class JobQueueFull(RuntimeError):
    """Too many jobs are waiting to run."""


class JobCancelled(BaseException):
    """Raised inside a running job when it is cancelled. A BaseException, so that the per-text
    isolation of `cxnlp.io.isolate` (which catches Exception) does not swallow it."""


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
    # A hash of the API key that uploaded it: its row cap, its fair share of the runners.
    owner: str = ""
    # The adapter the upload named (None: the served model, whichever it is when the job runs).
    adapter: str | None = None
    model: str | None = None  # the name of the model that ran it
    # The model's version (`cxnlp.feedback.records.model_identity`), stored with the items.
    model_version: str | None = None
    rows_done: int = 0
    rows: int | None = None
    errors: int | None = None
    error: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    def public(self) -> dict[str, Any]:
        """What the API shows: no server paths, no owner."""
        data = asdict(self)
        del data["input_path"], data["output_path"], data["owner"]
        return data

    @property
    def pending_rows(self) -> int:
        """Rows still to classify (counted at upload; what the per-key cap counts)."""
        if self.status not in ("queued", "running"):
            return 0
        return max((self.rows or 0) - self.rows_done, 0)


class _CountingModel:
    """Passes `predict` through and counts the texts done, for the job's progress."""

    def __init__(self, model: Any, job: Job, cancelled: threading.Event) -> None:
        self._model, self._job, self._cancelled = model, job, cancelled

    def __getattr__(self, name: str) -> Any:
        # The model's identity (source_, topic_tagger) decides whether a resumed job may reuse
        # its finished parts: a part made by another model must not be mixed in.
        return getattr(self._model, name)

    def predict(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list:
        if self._cancelled.is_set():
            raise JobCancelled(self._job.id)
        predictions = self._model.predict(texts, langs)
        self._job.rows_done += len(texts)
        return predictions


class JobRunner:
    """Jobs run in `workers` background threads, fairly between API keys: the next job is the
    oldest of the key with the fewest jobs running and, among those, served longest ago, so one
    key's big upload holds one runner, never all of them, and a key's many jobs take turns with
    another key's. A job can be cancelled (`cancel`) while queued or running. `current_model`
    gives the served model a job's `adapter` names (None: the default) when the job starts."""

    def __init__(
        self,
        jobs_dir: Path,
        current_model: Callable[[str | None], LoadedModel],
        *,
        max_queued: int = 16,
        chunk_rows: int = 2000,
        store_result: Callable[[Job], dict[str, Any]] | None = None,
        ray_address: str | None = None,
        ray_min_bytes: int = 64 * 1024 * 1024,
        ray_workers: int | None = None,
        workers: int = 2,
    ) -> None:
        self.jobs_dir = Path(jobs_dir)
        self.store_result = store_result
        self.current_model = current_model
        self.chunk_rows = chunk_rows
        self.max_queued = max_queued
        # Uploads of at least ray_min_bytes run on Ray (cxnlp.io.ray_engine) when an address is set.
        self.ray_address, self.ray_min_bytes, self.ray_workers = (
            ray_address,
            ray_min_bytes,
            ray_workers,
        )
        self._jobs: dict[str, Job] = {}
        self._pending: list[str] = []  # queued job ids, oldest first
        self._running: dict[str, threading.Event] = {}  # job id -> its cancel flag
        self._served: dict[str, int] = {}  # owner -> the turn its last job started on
        self._turn = 0
        self._lock = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, name=f"cxnlp-jobs-{n}", daemon=True)
            for n in range(max(1, workers))
        ]
        self._stopping = False

    @property
    def queued(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._load_existing()
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the running jobs; jobs still queued stay `queued` on disk and run again
        on the next start."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def new_job_dir(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        path = self.jobs_dir / job_id
        path.mkdir(parents=True)
        return job_id, path

    def pending_rows(self, owner: str) -> int:
        """Rows `owner` has queued or running (what the per-key cap counts)."""
        with self._lock:
            return sum(j.pending_rows for j in self._jobs.values() if j.owner == owner)

    def submit(self, job: Job) -> Job:
        with self._lock:
            if len(self._pending) >= self.max_queued:
                shutil.rmtree(Path(job.input_path).parent, ignore_errors=True)
                raise JobQueueFull(f"{len(self._pending)} jobs are already waiting")
            self._jobs[job.id] = job
            self._save(job)
            self._pending.append(job.id)
            self._lock.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job (a running one stops at its next chunk, its partial
        output removed); a finished job is deleted with its files. None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.id in self._pending:
                self._pending.remove(job.id)
                job.status, job.finished_at = "cancelled", time.time()
                job.error = "cancelled before it started"
                self._save(job)
                self._remove_files(job, keep_state=True)
            elif job.id in self._running:
                self._running[job.id].set()  # the job's thread finishes it as cancelled
            else:
                del self._jobs[job.id]
                shutil.rmtree(Path(job.input_path).parent, ignore_errors=True)
            return job

    def _remove_files(self, job: Job, keep_state: bool) -> None:
        folder = Path(job.input_path).parent
        for path in folder.iterdir() if folder.exists() else ():
            if keep_state and path.name == JOB_FILE:
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    def _next(self) -> tuple[Job, threading.Event] | None:
        """The next job to run (fair between owners), or None when stopping."""
        with self._lock:
            while not self._stopping:
                running = [self._jobs[i].owner for i in self._running if i in self._jobs]
                candidates = [self._jobs[i] for i in self._pending if i in self._jobs]
                if candidates:
                    # Round robin between owners: fewest jobs running, then the owner served
                    # longest ago (or never), then the oldest job.
                    job = min(
                        candidates,
                        key=lambda j: (
                            running.count(j.owner),
                            self._served.get(j.owner, -1),
                            j.created_at,
                        ),
                    )
                    self._turn += 1
                    self._served[job.owner] = self._turn
                    self._pending.remove(job.id)
                    flag = self._running[job.id] = threading.Event()
                    return job, flag
                self._lock.wait()
            return None

    def _run(self) -> None:
        while (picked := self._next()) is not None:
            job, flag = picked
            try:
                self._execute(job, flag)
            finally:
                with self._lock:
                    self._running.pop(job.id, None)
                    self._lock.notify_all()

    def _execute(self, job: Job, cancelled: threading.Event) -> None:
        # The model the job names (None: the default) as served when it starts, for all its rows.
        try:
            handle = self.current_model(job.adapter)
        except Exception as exc:  # noqa: BLE001 - e.g. an adapter no longer served after a restart
            self._finish(job, "failed", error=getattr(exc, "message", None) or str(exc))
            return
        job.status, job.model, job.started_at = "running", handle.name, time.time()
        job.model_version = model_identity(handle.model)[1]
        self._save(job)
        try:
            if self._on_ray(job):
                stats = self._classify_on_ray(handle.model, job, cancelled)
            else:
                stats = self._classify(_CountingModel(handle.model, job, cancelled), job)
        except JobCancelled:
            self._remove_files(job, keep_state=True)
            self._finish(job, "cancelled", error="cancelled while running")
            return
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

    def _classify_on_ray(self, model: Any, job: Job, cancelled: threading.Event) -> Any:
        # The actors get the model itself; progress comes back per partition, and so does a
        # cancellation (the driver stops after the partition it was told of).
        def done(rows: int) -> None:
            job.rows_done += rows
            if cancelled.is_set():
                raise JobCancelled(job.id)

        logger.info("job %s runs on Ray (%s)", job.id, self.ray_address)
        return self._classify(
            model,
            job,
            engine="ray",
            address=None if self.ray_address == "local" else self.ray_address,
            workers=self.ray_workers,
            on_rows=done,
        )

    def _classify(self, model: Any, job: Job, **engine: Any) -> Any:
        """The job's file classified by `model` (`engine`: classify_file's engine options). On
        either engine the parts a killed run finished are reused when the input, settings and
        model are the same (classify_file checks), else the job starts over."""
        return classify_file(
            model,
            job.input_path,
            job.output_path,
            text_col=job.text_col,
            id_col=job.id_col,
            chunk_rows=self.chunk_rows,
            resume=True,
            progress=False,
            **engine,
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
            if job.id in self._jobs:  # submitted before the start: already queued
                continue
            if job.status in ("queued", "running"):
                unfinished.append(job)
            self._jobs[job.id] = job
        for job in sorted(unfinished, key=lambda j: j.created_at):
            if len(self._pending) >= self.max_queued:
                job.status, job.finished_at = "failed", time.time()
                job.error = "the service stopped before the job finished; submit it again"
            else:
                logger.info(
                    "job %s was %s when the service stopped: queued again", job.id, job.status
                )
                job.status, job.started_at = "queued", None
                self._pending.append(job.id)
            self._save(job)
