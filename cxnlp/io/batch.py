"""Batch classification of review exports: every input row comes out, in order, with its original
columns plus the model's result or an error.

The input is read in chunks; each classified chunk is written to a part file in a work directory
beside the output (written to a temporary name, then renamed, so a part is whole or absent). A
killed run restarted with `resume=True` skips the chunks whose parts exist, and the final output is
assembled from the parts and renamed into place, so it too appears whole or not at all.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cxnlp.io.tables import (
    count_rows,
    escape_formulas,
    iter_table,
    read_header,
    table_format,
    write_table,
)
from cxnlp.labels import RESULT_COLUMNS, SENTIMENTS, encode_topics, probability_column, topics_cells
from cxnlp.models.base import SentimentModel

logger = logging.getLogger(__name__)

_STATE_FILE = "state.json"
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@dataclass
class BatchStats:
    rows: int
    errors: int
    seconds: float
    # The encoding a CSV input was read in (None for the other formats).
    encoding: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def custom_topic_names(model: SentimentModel) -> list[str]:
    """The custom topics added to `model` (they change its output, so a resume must match them)."""
    tagger = getattr(model, "topic_tagger", None)
    return [topic.name for topic in tagger.custom_topics] if tagger is not None else []


def row_error(value: object) -> str | None:
    """Why a cell cannot be classified, or None when it can."""
    # pd.isna also catches pd.NA and NaT, which a "string"-typed or Parquet column holds.
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return "missing text"
    text = str(value)
    if not text.strip():
        return "empty text"
    if "\ufffd" in text:
        return "text has bytes that could not be decoded in the file's encoding"
    if _SURROGATE_RE.search(text):
        return "text is not valid Unicode: it has a lone surrogate (half of a UTF-16 pair)"
    return None


def classify_frame(
    model: SentimentModel,
    frame: pd.DataFrame,
    text_col: str = "text",
    lang_col: str | None = None,
) -> pd.DataFrame:
    """`frame` with the result columns added; rows that cannot be classified get `error`.

    With `lang_col`, a row's fa / ar / en there is used instead of detecting its language.
    """
    out = frame.copy()
    errors = [row_error(v) for v in frame[text_col].tolist()]
    ok = [i for i, e in enumerate(errors) if e is None]
    texts = [str(frame[text_col].iloc[i]) for i in ok]
    langs: list[str | None] = [None] * len(ok)
    if lang_col is not None and lang_col in frame.columns:
        given = frame[lang_col].tolist()
        langs = [given[i] if given[i] in ("fa", "ar", "en") else None for i in ok]
    results: dict[int, dict] = {}
    try:
        predictions = model.predict(texts, langs) if texts else []
        results = {i: p.to_dict() for i, p in zip(ok, predictions, strict=True)}
    except Exception:  # noqa: BLE001 - isolate the failing rows instead of losing the chunk
        logger.exception("a chunk failed as a whole; classifying its rows one by one")
        for i, text, lang in zip(ok, texts, langs, strict=True):
            try:
                results[i] = model.predict([text], [lang])[0].to_dict()
            except Exception as exc:  # noqa: BLE001
                # The message stays in the log: it can quote the text or the model's internals.
                logger.warning("row %d failed: %s: %s", i, type(exc).__name__, exc)
                errors[i] = f"classification failed ({type(exc).__name__}); the log has the details"
    columns: dict[str, list] = {c: [] for c in RESULT_COLUMNS}
    for i in range(len(frame)):
        r = results.get(i)
        columns["sentiment"].append(r["sentiment"] if r else None)
        for label in SENTIMENTS:
            column = probability_column(label)
            columns[column].append(round(r["probabilities"][label], 6) if r else None)
        columns["confidence"].append(round(r["confidence"], 6) if r else None)
        columns["lang"].append(r["lang"] if r else None)
        columns["topics"].append(encode_topics(r["topics"]) if r else None)
        columns["mixed"].append(bool(r["mixed"]) if r else None)
        columns["error"].append(errors[i])
    clashing = [c for c in RESULT_COLUMNS if c in frame.columns]
    if clashing:
        logger.warning("input columns %s are replaced by the model's results", clashing)
    for name, values in columns.items():
        out[name] = values
    return out


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
    **engine_options: Any,
) -> BatchStats:
    """Classify every row of `input_path` into `output_path` (formats from the extensions).

    A missing text column is an error before any work; `model` may be a function that loads
    the model, called only once the input's header has the text column. Rows get an `id_col`
    column of their 1-based row number when the input has none.

    `engine="ray"` runs the job on Ray with the same output (`cxnlp.io.ray_engine.classify_file_ray`,
    whose options - `address`, `workers`, `output_format` - go in `engine_options`).
    """
    if engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {engine!r}; expected 'local' or 'ray'")
    if engine == "local" and engine_options:
        raise ValueError(f"{sorted(engine_options)} are options of engine='ray' only")
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
    if work.exists() and not (resume and _same_run(work, state)):
        if resume:
            logger.warning("%s belongs to another run; starting over", work)
        shutil.rmtree(work)
    if not work.exists():
        # Written only into a fresh work directory: rewriting it on resume would leave it empty for
        # a moment, and a run killed then would throw every finished part away on the next resume.
        work.mkdir(parents=True)
        (work / _STATE_FILE).write_text(json.dumps(state))

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
        else:
            if id_col not in chunk.columns:
                chunk.insert(0, id_col, np.arange(offset + 1, offset + len(chunk) + 1))
            done = classify_frame(model, chunk, text_col)
            tmp = part.with_suffix(".tmp")
            done.astype(
                {c: "string" for c in chunk.columns if chunk[c].dtype == object}
            ).to_parquet(tmp, index=False)
            tmp.rename(part)
        offset += len(chunk)
        rows += len(done)
        errors += int(done["error"].notna().sum())
        bar.update(len(chunk))
    bar.close()
    _assemble(sorted(work.glob("part-*.parquet")), output_path)
    shutil.rmtree(work)
    stats = BatchStats(
        rows=rows,
        errors=errors,
        seconds=time.time() - started,
        encoding=encodings[0] if encodings else None,
    )
    logger.info("%d rows (%d errors) in %.1f s", rows, errors, stats.seconds)
    return stats


def _same_run(work: Path, state: dict) -> bool:
    try:
        return json.loads((work / _STATE_FILE).read_text()) == state
    except (OSError, ValueError):
        return False


def _assemble(parts: list[Path], output_path: Path) -> None:
    """Join the parts into the output, written under a temporary name and renamed into place."""
    tmp = output_path.with_name(f".{output_path.name}.tmp{output_path.suffix}")
    kind = table_format(output_path)
    if kind in ("csv", "jsonl"):
        with open(tmp, "w", encoding="utf-8-sig" if kind == "csv" else "utf-8", newline="") as out:
            for i, part in enumerate(parts):
                frame = pd.read_parquet(part)
                if kind == "csv":
                    sep = "\t" if output_path.suffix.lower() == ".tsv" else ","
                    # Texts a spreadsheet would run as formulas get a leading apostrophe.
                    frame = escape_formulas(frame)
                    # CRLF rows (RFC 4180): a text holding a bare CR is then quoted, not split.
                    frame.to_csv(out, index=False, header=i == 0, sep=sep, lineterminator="\r\n")
                elif len(frame):
                    frame = topics_cells(frame, as_text=False)  # an array, not JSON in a string
                    frame.to_json(out, orient="records", lines=True, force_ascii=False)
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not parts:
            pq.write_table(pa.table({c: pa.array([], pa.string()) for c in RESULT_COLUMNS}), tmp)
        else:
            # A column can be all-null (type null) in one part and typed in another, e.g. `error`
            # in a chunk without errors: write every part in the schema that fits them all.
            schema = pa.unify_schemas(
                [pq.read_schema(part) for part in parts], promote_options="permissive"
            ).remove_metadata()
            with pq.ParquetWriter(tmp, schema) as writer:
                for part in parts:
                    writer.write_table(pq.read_table(part).cast(schema))
    else:
        frames = [pd.read_parquet(p) for p in parts]
        write_table(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), tmp)
    tmp.replace(output_path)
