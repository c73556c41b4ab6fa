"""Batch classification of review exports: every input row comes out, in order, with its original
columns plus the model's result or an error.

The input is read in chunks; each classified chunk is written to a part file in a work directory
beside the output (written to a temporary name, then renamed, so a part is whole or absent). A
killed run restarted with `resume=True` skips the chunks whose parts exist, and the final output is
assembled from the parts and renamed into place, so it too appears whole or not at all.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxnlp.io.frames import (
    BatchStats,
    assemble,
    check_not_input,
    classify_frame,
    custom_topic_names,
    open_work_dir,
    row_error,
)
from cxnlp.io.tables import (
    count_rows,
    iter_table,
    read_header,
    table_format,
)
from cxnlp.models.base import SentimentModel

logger = logging.getLogger(__name__)


# Rows classified between two moves of the progress bar.
PROGRESS_ROWS = 256

__all__ = ["BatchStats", "classify_file", "classify_frame", "custom_topic_names", "row_error"]


def classify_file(
    model: SentimentModel | Callable[[], SentimentModel],
    input_path: str | Path,
    output_path: str | Path,
    *,
    text_col: str = "text",
    id_col: str = "id",
    chunk_rows: int = 2000,
    resume: bool = False,
    progress: bool = True,
    engine: str = "local",
    excel_safe: bool = False,
    **engine_options: Any,
) -> BatchStats:
    """Classify every row of `input_path` into `output_path` (formats from the extensions).

    A missing text column is an error before any work; `model` may be a function that loads
    the model, called only once the input's header has the text column. Rows get an `id_col`
    column of their 1-based row number when the input has none.

    Every text and id is written as read; `excel_safe` escapes, in a CSV output, the cells a
    spreadsheet would run as formulas (for a file opened in Excel, not one joined back by id).
    An output that is the input itself is refused before any work.

    `engine="ray"` runs the job on Ray with the same output (`cxnlp.io.ray_engine.classify_file_ray`,
    whose options - `address`, `workers`, `output_format` - go in `engine_options`).
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}; expected 'local' or 'ray'")
    if engine == "local" and engine_options:
        raise ValueError(f"{sorted(engine_options)} are options of engine='ray' only")
    check_not_input(input_path, output_path)
    if engine == "ray":
        from cxnlp.io.ray_engine import classify_file_ray

        return classify_file_ray(
            model() if callable(model) and not hasattr(model, "predict") else model,
            input_path,
            output_path,
            text_col=text_col,
            id_col=id_col,
            chunk_rows=chunk_rows,
            resume=resume,
            progress=progress,
            excel_safe=excel_safe,
            **engine_options,
        )
    input_path, output_path = Path(input_path), Path(output_path)
    table_format(output_path)  # an unsupported output type fails before any work
    if not input_path.is_file():
        raise FileNotFoundError(f"input file not found: {input_path}")
    if not hasattr(model, "predict") and callable(model):
        # A loader: the input's header is checked first, so that a wrong --text-col is said
        # before a model load of several seconds.
        columns = read_header(input_path)
        if text_col not in columns:
            raise KeyError(
                f"{input_path} has no text column {text_col!r}; its columns are {columns}; pass "
                "the right one with --text-col"
            )
        model = model()
    work = output_path.with_name(output_path.name + ".parts")
    # Parts of an earlier run are reused only for the same input, unchanged, read the same way.
    input_stat = input_path.stat()
    state = {
        "input": str(input_path.resolve()),
        "size": input_stat.st_size,
        "mtime_ns": input_stat.st_mtime_ns,
        "chunk_rows": chunk_rows,
        "text_col": text_col,
        "id_col": id_col,
        # A resume with another model would mix two models' results in one output.
        "model": getattr(model, "source_", None),
        "custom_topics": custom_topic_names(model),
    }
    open_work_dir(work, state, resume)

    started, rows, errors, offset = time.time(), 0, 0, 0
    encodings: list[str] = []
    # A total (from a cheap row count) gives the bar its percentage and ETA.
    total = count_rows(input_path) if progress else None
    bar = tqdm(desc="classifying", unit="row", total=total, disable=not progress)
    chunks = iter_table(input_path, chunk_rows=chunk_rows, on_encoding=encodings.append)
    for index, chunk in enumerate(chunks):
        if index == 0 and text_col not in chunk.columns:
            shutil.rmtree(work)
            raise KeyError(
                f"{input_path} has no text column {text_col!r}; its columns are "
                f"{list(chunk.columns)}; pass the right one with --text-col"
            )
        chunk = chunk.reset_index(drop=True)
        part = work / f"part-{index:06d}.parquet"
        if part.exists():
            done = pd.read_parquet(part, columns=["error"])
            bar.update(len(done))
        else:
            if id_col not in chunk.columns:
                chunk.insert(0, id_col, np.arange(offset + 1, offset + len(chunk) + 1))
            # Classified in slices, so that the bar moves (and shows a rate) every few hundred
            # rows rather than once per chunk.
            slices = []
            for start in range(0, len(chunk), PROGRESS_ROWS):
                piece = chunk.iloc[start : start + PROGRESS_ROWS]
                slices.append(classify_frame(model, piece, text_col))
                bar.update(len(piece))
            done = (
                pd.concat(slices, ignore_index=True)
                if slices
                else classify_frame(model, chunk, text_col)
            )
            tmp = part.with_suffix(".tmp")
            done.astype(
                {c: "string" for c in chunk.columns if chunk[c].dtype == object}
            ).to_parquet(tmp, index=False)
            tmp.rename(part)
        offset += len(chunk)
        rows += len(done)
        errors += int(done["error"].notna().sum())
    bar.close()
    assemble(sorted(work.glob("part-*.parquet")), output_path, excel_safe=excel_safe)
    shutil.rmtree(work)
    stats = BatchStats(
        rows=rows,
        errors=errors,
        seconds=time.time() - started,
        encoding=encodings[0] if encodings else None,
    )
    logger.info("%d rows (%d errors) in %.1f s", rows, errors, stats.seconds)
    return stats
