"""Batch classification on Ray: the job of `cxnlp.io.batch.classify_file`, with the model in a pool of
Ray actors (one model load per actor) and the same output, byte for byte.

The driver plans the job: it splits every input file into partitions of exactly the chunks the
local engine reads (`chunk_rows` rows each, so that JSONL and Parquet columns get the same types,
the model sees the same batches and ids come out the same). A partition is a byte range of a CSV
or JSONL file, a row range of a Parquet file, or, for XLSX (read whole through pandas, like the
local engine), the rows themselves. A Ray Data pipeline maps the partitions over an actor pool:
each actor reads its partition with cxnlp's readers (the encoding and delimiter the driver
detected, every CSV cell a string), adds the 1-based row-number id when the input has none,
classifies it with `classify_frame` and returns the part as Parquet bytes. The driver writes each
part, as it arrives, into the same `OUTPUT.parts` work directory the local engine uses (temporary
name, then rename); a rerun with `resume=True` keeps the parts already written, and the output is
assembled by the local engine's own code and renamed into place. With a directory as output the
parts become a Parquet dataset, renamed into place as a whole.

Input files must be readable at the same path on every node of the cluster (a shared filesystem),
as for Ray Data's own readers; the parts travel back to the driver through Ray, so the output only
needs to be writable by the driver.
"""

from __future__ import annotations

import csv
import glob
import io
import logging
import os
import pickle
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxnlp.io.frames import BatchStats, assemble, classify_frame, custom_topic_names, open_work_dir
from cxnlp.io.tables import FORMATS, detect_delimiter, detect_encoding, table_format
from cxnlp.models.base import SentimentModel

logger = logging.getLogger(__name__)

RAY_INSTALL = 'pip install -e ".[ray]" (from a cxnlp checkout) or pip install "cxnlp[ray]"'
# A partition that keeps killing its actor must not retry forever (Ray Data's default): three
# restarts of an actor and three retries of a task ride out a lost worker or node.
MAX_RESTARTS = 3
MAX_TASK_RETRIES = 3
_PART = "part-{:06d}.parquet"


class RayNotInstalled(ImportError):
    """`engine="ray"` without Ray installed."""


def import_ray() -> Any:
    """The `ray` module with Ray Data, or an error that names the install command."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayNotInstalled(
            f"the Ray engine needs Ray, which is not installed here; install it with: {RAY_INSTALL}"
        ) from exc
    return ray


@dataclass
class RayBatchStats(BatchStats):
    partitions: int = 0
    # Partitions kept from an earlier, interrupted run (resume=True).
    partitions_reused: int = 0
    workers: int = 0


@dataclass(frozen=True)
class InputFile:
    """One input file and how its partitions are read."""

    path: str
    kind: str
    encoding: str | None = None
    delimiter: str | None = None
    # CSV: the text of the header record, put before each partition's rows.
    header: str = ""
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Partition:
    index: int
    file: int
    # Byte range (CSV, JSONL) or row range (Parquet, XLSX) in the file.
    start: int
    end: int
    rows: int
    # Rows before this partition in the whole input: its ids start at offset + 1.
    offset: int
    # XLSX only: the partition's rows, pickled (the file is read whole by the driver).
    payload: bytes = b""


@dataclass
class Plan:
    files: list[InputFile]
    partitions: list[Partition] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)


# --------------------------------------------------------------------------------------------
# Inputs and the plan


def resolve_inputs(source: str | Path, exclude: Sequence[Path] = ()) -> list[Path]:
    """The files of an input: a file, a directory (its table files, by name) or a glob pattern."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FORMATS
        )
        where = f"directory {path}"
    elif glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(os.path.expanduser(text)) if Path(p).is_file())
        where = f"pattern {text!r}"
    else:
        raise FileNotFoundError(f"input file not found: {path}")
    skip = {p.resolve() for p in exclude}
    found = [p for p in found if p.resolve() not in skip]
    if not found:
        raise FileNotFoundError(f"no input files in {where} (supported: {sorted(FORMATS)})")
    for p in found:
        table_format(p)  # a pattern that matches another type of file is an error, not skipped
    return found


def plan_job(inputs: Sequence[Path], chunk_rows: int, text_col: str) -> Plan:
    """The partitions of every input, in input order. A missing text column fails before the
    rest of the file is read; files with different columns cannot go into one output."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    plan = Plan(files=[])
    offset = 0
    for number, path in enumerate(inputs):
        kind = table_format(path)
        planner = {"csv": _plan_csv, "jsonl": _plan_jsonl, "parquet": _plan_parquet}.get(
            kind, _plan_xlsx
        )
        spec, spans = planner(path, chunk_rows, text_col)
        if plan.files and spec.columns and plan.files[0].columns != spec.columns:
            raise ValueError(
                f"{path} has the columns {list(spec.columns)} but {plan.files[0].path} has "
                f"{list(plan.files[0].columns)}: files in one job must have the same columns; "
                "classify them separately"
            )
        plan.files.append(spec)
        for start, end, rows, payload in spans:
            plan.partitions.append(
                Partition(len(plan.partitions), number, start, end, rows, offset, payload)
            )
            offset += rows
    return plan


def _missing_text(path: Path, text_col: str, columns: Sequence[str]) -> KeyError:
    return KeyError(
        f"{path} has no text column {text_col!r}; its columns are {list(columns)}; "
        "pass the right one with --text-col"
    )


def _codec(path: Path, encoding: str) -> tuple[str, int]:
    """The BOM-less codec that turns decoded text back into the file's bytes, and the BOM size."""
    if encoding == "utf-8-sig":
        return "utf-8", 3
    if encoding == "utf-16":
        with open(path, "rb") as handle:
            bom = handle.read(2)
        return ("utf-16-le" if bom == b"\xff\xfe" else "utf-16-be"), 2
    return encoding, 0


def _blank(raw: str, delimiter: str) -> bool:
    """Whether pandas skips this CSV line: nothing but spaces and tabs other than the delimiter."""
    return all(c in " \t" and c != delimiter for c in raw.rstrip("\r\n"))


def _read_csv(text: str, spec: InputFile) -> pd.DataFrame:
    # The options of cxnlp.io.iter_table: every cell a string, nothing turned into NaN.
    return pd.read_csv(
        io.StringIO(text, newline=""), sep=spec.delimiter, dtype=str, keep_default_na=False
    )


def _plan_csv(path: Path, chunk_rows: int, text_col: str) -> tuple[InputFile, list]:
    """Split a CSV at record ends (a quoted newline is not one) into chunks of `chunk_rows`
    records, counting records as pandas does (blank lines are none)."""
    encoding = detect_encoding(path)
    delimiter = detect_delimiter(path, encoding)
    logger.info("reading %s as CSV (%s, delimiter %r)", path, encoding, delimiter)
    codec, position = _codec(path, encoding)
    spans: list[tuple[int, int, int, bytes]] = []
    header: str | None = None
    columns: tuple[str, ...] = ()
    lines: list[str] = []
    start = count = 0
    limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a long review is one field, not an error
    try:
        with open(path, encoding=encoding, errors="strict", newline="") as handle:

            def feed() -> Iterator[str]:
                nonlocal position
                for line in handle:
                    position += len(line.encode(codec))
                    lines.append(line)
                    yield line

            for _record in csv.reader(feed(), delimiter=delimiter, quotechar='"', strict=False):
                raw = "".join(lines)
                lines.clear()
                if _blank(raw, delimiter):
                    continue
                if header is None:
                    header = raw
                    spec = InputFile(str(path), "csv", encoding, delimiter, header)
                    columns = tuple(_read_csv(header, spec).columns)
                    if text_col not in columns:
                        raise _missing_text(path, text_col, columns)
                    start = position
                    continue
                count += 1
                if count == chunk_rows:
                    spans.append((start, position, count, b""))
                    start, count = position, 0
    finally:
        csv.field_size_limit(limit)
    if header is None:
        raise pd.errors.EmptyDataError(f"{path}: no columns to parse from file")
    if count or not spans:  # the last rows; a file of only a header is one empty chunk
        spans.append((start, position, count, b""))
    return InputFile(str(path), "csv", encoding, delimiter, header, columns), spans


def _read_jsonl(text: str, chunk_rows: int) -> pd.DataFrame:
    # The reader of cxnlp.io.iter_table, on a text of at most `chunk_rows` lines: one chunk.
    chunks = list(
        pd.read_json(io.StringIO(text, newline=""), lines=True, dtype=False, chunksize=chunk_rows)
    )
    return chunks[0] if chunks else pd.DataFrame()


def _plan_jsonl(path: Path, chunk_rows: int, text_col: str) -> tuple[InputFile, list]:
    """Chunks of `chunk_rows` lines, as pandas reads JSON lines (a blank line is no row)."""
    spans: list[tuple[int, int, int, bytes]] = []
    columns: tuple[str, ...] = ()
    start = position = count = rows = 0
    first: list[str] = []
    with open(path, encoding="utf-8", errors="strict", newline="") as handle:
        for line in handle:
            position += len(line.encode("utf-8"))
            count += 1
            rows += bool(line.strip())
            if not spans:
                first.append(line)
            if count == chunk_rows:
                if not spans:
                    columns = _check_first_jsonl(path, first, chunk_rows, text_col)
                spans.append((start, position, rows, b""))
                start, count, rows = position, 0, 0
    if count:
        if not spans:
            columns = _check_first_jsonl(path, first, chunk_rows, text_col)
        spans.append((start, position, rows, b""))
    return InputFile(str(path), "jsonl", columns=columns), spans


def _check_first_jsonl(
    path: Path, lines: list[str], chunk_rows: int, text_col: str
) -> tuple[str, ...]:
    columns = tuple(_read_jsonl("".join(lines), chunk_rows).columns)
    if text_col not in columns:
        raise _missing_text(path, text_col, columns)
    return columns


def _plan_parquet(path: Path, chunk_rows: int, text_col: str) -> tuple[InputFile, list]:
    import pyarrow.parquet as pq

    total = pq.ParquetFile(path).metadata.num_rows
    spans = [
        (s, min(s + chunk_rows, total), min(chunk_rows, total - s), b"")
        for s in range(0, total, chunk_rows)
    ]
    spec = InputFile(str(path), "parquet")
    columns: tuple[str, ...] = ()
    if spans:
        first = Partition(0, 0, spans[0][0], spans[0][1], spans[0][2], 0)
        columns = tuple(read_partition(spec, first, chunk_rows).columns)
        if text_col not in columns:
            raise _missing_text(path, text_col, columns)
    return InputFile(str(path), "parquet", columns=columns), spans


def _plan_xlsx(path: Path, chunk_rows: int, text_col: str) -> tuple[InputFile, list]:
    frame = pd.read_excel(path, dtype=object)
    if text_col not in frame.columns:
        raise _missing_text(path, text_col, frame.columns)
    spans = []
    for start in range(0, max(len(frame), 1), chunk_rows):
        chunk = frame.iloc[start : start + chunk_rows]
        spans.append((start, start + len(chunk), len(chunk), pickle.dumps(chunk)))
    return InputFile(str(path), "xlsx", columns=tuple(frame.columns)), spans


def read_partition(spec: InputFile, part: Partition, chunk_rows: int) -> pd.DataFrame:
    """The rows of one partition, read as the local engine reads that chunk."""
    if spec.kind == "xlsx":
        frame = pickle.loads(part.payload)
    elif spec.kind == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(spec.path)
        metadata = parquet.metadata
        groups, first, seen = [], None, 0
        for g in range(metadata.num_row_groups):
            size = metadata.row_group(g).num_rows
            if seen < part.end and seen + size > part.start:
                groups.append(g)
                first = seen if first is None else first
            seen += size
        table = parquet.read_row_groups(groups).slice(part.start - (first or 0), part.rows)
        frame = table.to_pandas()
    else:
        with open(spec.path, "rb") as handle:
            handle.seek(part.start)
            data = handle.read(part.end - part.start)
        if spec.kind == "csv":
            codec, _ = _codec(Path(spec.path), spec.encoding or "utf-8")
            frame = _read_csv(spec.header + data.decode(codec), spec)
        else:
            frame = _read_jsonl(data.decode("utf-8"), chunk_rows)
    if len(frame) != part.rows:
        raise ValueError(
            f"{spec.path}: partition {part.index} was planned with {part.rows} rows but reads as "
            f"{len(frame)}; the Ray engine cannot split this file the way pandas reads it, "
            "classify it with the local engine"
        )
    return frame.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The actor


class PartitionClassifier:
    """A Ray Data callable class: one per actor, holding the model, classifying partitions."""

    def __init__(
        self,
        model: SentimentModel,
        files: list[InputFile],
        text_col: str,
        id_col: str,
        chunk_rows: int,
    ) -> None:
        self.model, self.files = model, files
        self.text_col, self.id_col, self.chunk_rows = text_col, id_col, chunk_rows

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        out = []
        for record in batch.to_dict("records"):
            part = Partition(**record)
            chunk = read_partition(self.files[part.file], part, self.chunk_rows)
            if self.id_col not in chunk.columns:
                chunk.insert(
                    0, self.id_col, np.arange(part.offset + 1, part.offset + len(chunk) + 1)
                )
            done = classify_frame(self.model, chunk, self.text_col)
            buffer = io.BytesIO()
            # As cxnlp.io.batch writes a part: object columns as strings.
            done.astype(
                {c: "string" for c in chunk.columns if chunk[c].dtype == object}
            ).to_parquet(buffer, index=False)
            out.append(
                {
                    "partition": part.index,
                    "part": buffer.getvalue(),
                    "rows": len(done),
                    "errors": int(done["error"].notna().sum()),
                }
            )
        return pd.DataFrame(out, columns=["partition", "part", "rows", "errors"])


# --------------------------------------------------------------------------------------------
# The job


def is_dataset_output(output_path: Path, output_format: str | None) -> bool:
    """Whether the output is a directory of Parquet parts rather than one file."""
    as_dir = output_path.is_dir() or not output_path.suffix
    if output_format is not None and output_format not in set(FORMATS.values()):
        raise ValueError(
            f"unknown output format {output_format!r}; expected one of {sorted(set(FORMATS.values()))}"
        )
    if as_dir:
        if output_format not in (None, "parquet"):
            raise ValueError(
                f"{output_path} is a directory: a directory output is a partitioned Parquet "
                "dataset (--format parquet); for one file give a file name with its extension"
            )
        if output_path.exists():
            if not output_path.is_dir():
                raise ValueError(f"{output_path} exists and is not a directory")
            foreign = [p.name for p in output_path.iterdir() if not p.name.startswith("part-")]
            if foreign:
                raise ValueError(
                    f"{output_path} holds files that are not parts of a dataset ({foreign[:3]}); "
                    "refusing to replace it: give an empty or new directory"
                )
        return True
    kind = table_format(output_path)  # an unsupported output type fails before any work
    if output_format is not None and output_format != kind:
        raise ValueError(
            f"--format {output_format} does not match the output file {output_path} ({kind})"
        )
    return False


def classify_file_ray(
    model: SentimentModel,
    input_path: str | Path,
    output_path: str | Path,
    *,
    text_col: str = "text",
    id_col: str = "id",
    chunk_rows: int = 2000,
    resume: bool = False,
    progress: bool = True,
    address: str | None = None,
    workers: int | None = None,
    output_format: str | None = None,
    on_rows: Callable[[int], None] | None = None,
    excel_safe: bool = False,
) -> RayBatchStats:
    """`cxnlp.io.batch.classify_file` on Ray (see the module docstring); same output, same errors.

    `input_path` may also be a directory or a glob pattern: its files are classified in name
    order into one output, ids numbering the rows of all of them. `address` joins a running Ray
    cluster ("auto", "ray://host:port"); without it a local Ray runtime starts with `workers` CPUs
    (default: all) and stops at the end. A runtime already started in this process is used as it
    is. `workers` actors hold the model (default: the cluster's CPUs). `on_rows` is called with the
    number of rows of each partition done. `excel_safe` as in `cxnlp.io.frames.assemble`.
    """
    ray = import_ray()
    input_path, output_path = Path(input_path), Path(output_path)
    dataset = is_dataset_output(output_path, output_format)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    inputs = resolve_inputs(input_path, exclude=[output_path])
    plan = plan_job(inputs, chunk_rows, text_col)
    work = output_path.with_name(output_path.name + ".parts")
    state = {
        "engine": "ray",
        "inputs": [
            {"path": str(p.resolve()), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
            for p in inputs
        ],
        "chunk_rows": chunk_rows,
        "text_col": text_col,
        "id_col": id_col,
        "model": getattr(model, "source_", None),
        "custom_topics": custom_topic_names(model),
        "output": "dataset" if dataset else table_format(output_path),
    }
    open_work_dir(work, state, resume)

    started = time.time()
    todo = [p for p in plan.partitions if not (work / _PART.format(p.index)).exists()]
    pending = {p.index for p in todo}
    rows = errors = 0
    for p in plan.partitions:
        if p.index not in pending:
            done = pd.read_parquet(work / _PART.format(p.index), columns=["error"])
            rows, errors = rows + len(done), errors + int(done["error"].notna().sum())
    logger.info(
        "%d files, %d rows in %d partitions; %d to classify",
        len(plan.files),
        plan.rows,
        len(plan.partitions),
        len(todo),
    )
    pool = 0
    bar = tqdm(desc="classifying", unit="row", total=plan.rows, initial=rows, disable=not progress)
    if todo:
        owned = not ray.is_initialized()
        if owned:
            # The job's workers import this process's cxnlp, wherever they run.
            runtime_env = {"py_modules": [str(_package_dir())]}
            if address:
                ray.init(address=address, logging_level=logging.WARNING, runtime_env=runtime_env)
            else:
                start_local_ray(ray, workers or os.cpu_count(), runtime_env)
        elif address:
            logger.info("Ray is already initialized in this process; using it, not %s", address)
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            pool = max(1, min(workers or cpus, len(todo)))
            for result in _run(ray, model, plan, todo, text_col, id_col, chunk_rows, pool):
                part = work / _PART.format(int(result["partition"]))
                tmp = part.with_suffix(".tmp")
                tmp.write_bytes(result["part"])
                tmp.rename(part)
                rows, errors = rows + int(result["rows"]), errors + int(result["errors"])
                bar.update(int(result["rows"]))
                if on_rows is not None:
                    on_rows(int(result["rows"]))
        finally:
            bar.close()
            if owned:
                ray.shutdown()
    bar.close()
    parts = [work / _PART.format(p.index) for p in plan.partitions]
    if dataset:
        _write_dataset(parts, output_path)
    else:
        assemble(parts, output_path, excel_safe=excel_safe)
    shutil.rmtree(work)
    encodings = list(dict.fromkeys(f.encoding for f in plan.files if f.encoding))
    stats = RayBatchStats(
        rows=rows,
        errors=errors,
        seconds=time.time() - started,
        encoding=", ".join(encodings) or None,
        partitions=len(plan.partitions),
        partitions_reused=len(plan.partitions) - len(todo),
        workers=pool,
    )
    logger.info("%d rows (%d errors) in %.1f s on %d actors", rows, errors, stats.seconds, pool)
    return stats


def _run(
    ray: Any,
    model: SentimentModel,
    plan: Plan,
    todo: list[Partition],
    text_col: str,
    id_col: str,
    chunk_rows: int,
    pool: int,
) -> Iterator[dict]:
    """The classified partitions as the actors finish them (in any order)."""
    context = ray.data.DataContext.get_current()
    saved = context.enable_progress_bars, context.execution_options.preserve_order
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False
    items = [asdict(p) for p in todo]
    restartable = {"max_restarts": MAX_RESTARTS, "max_task_retries": MAX_TASK_RETRIES}
    try:
        with warnings.catch_warnings():
            # Ray 2.60 deprecates passing these as ray_remote_args but has no other way yet.
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                PartitionClassifier,
                fn_constructor_kwargs={
                    "model": model,
                    "files": plan.files,
                    "text_col": text_col,
                    "id_col": id_col,
                    "chunk_rows": chunk_rows,
                },
                batch_size=1,
                batch_format="pandas",
                compute=ray.data.ActorPoolStrategy(size=pool),
                num_cpus=1,
                **restartable,
            )
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="pandas"):
                yield from batch.to_dict("records")
        except Exception as exc:
            cause = _user_error(exc)
            if cause is not None:
                raise cause from exc
            raise
    finally:
        context.enable_progress_bars = saved[0]
        context.execution_options.preserve_order = saved[1]


def start_local_ray(ray: Any, cpus: int | None, runtime_env: dict | None = None) -> None:
    """Start a local Ray runtime. Ray gives its raylet a fixed 30 s to come up, which a busy
    machine can miss: a start that times out is tried again (three times in all)."""
    for attempt in range(3):
        try:
            ray.init(
                num_cpus=cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                runtime_env=runtime_env,
                # A worker importing torch on a busy machine can take over Ray's default 60 s
                # to start; a restarted actor must not be given up on for that.
                _system_config={
                    "worker_register_timeout_seconds": 600,
                    "agent_register_timeout_ms": 600_000,
                },
            )
            return
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == 2:
                raise
            logger.warning("the local Ray runtime did not start in time; trying again")
            ray.shutdown()
            _stop_ray_children()


def _stop_ray_children() -> None:
    """Stop what a failed local start left running: this process's own Ray child processes
    (ray.shutdown does not know them when the start failed)."""
    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            if "ray" in " ".join(child.cmdline()):
                child.kill()
                child.wait(10)
        except (psutil.Error, OSError):
            continue


def _package_dir() -> Path:
    import cxnlp

    return Path(cxnlp.__file__).resolve().parent


def _user_error(exc: BaseException) -> BaseException | None:
    """The error of cxnlp's own code that failed a Ray task (a bad row count, an unparseable
    file), so that it reaches the caller as the local engine raises it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(cause, (ValueError, KeyError)):
            return cause
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return None


def _write_dataset(parts: list[Path], output_path: Path) -> None:
    """The parts as a Parquet dataset in one schema, written beside the output and renamed
    into place."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cxnlp.labels import RESULT_COLUMNS

    output_path = Path(str(output_path).rstrip("/" + os.sep))
    tmp = output_path.with_name(f".{output_path.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if not parts:
        pq.write_table(
            pa.table({c: pa.array([], pa.string()) for c in RESULT_COLUMNS}), tmp / _PART.format(0)
        )
    else:
        # As in one Parquet file: a column all-null in one part and typed in another gets the
        # type that fits every part, so that the dataset reads as one table.
        schema = pa.unify_schemas(
            [pq.read_schema(p) for p in parts], promote_options="permissive"
        ).remove_metadata()
        for part in parts:
            pq.write_table(pq.read_table(part).cast(schema), tmp / part.name)
    if output_path.exists():
        old = output_path.with_name(f".{output_path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        output_path.rename(old)
        tmp.rename(output_path)
        shutil.rmtree(old)
    else:
        tmp.rename(output_path)
