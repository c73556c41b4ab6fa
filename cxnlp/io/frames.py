"""What both batch engines share: one frame classified row by row into the result columns
(`classify_frame`), the run's counts (`BatchStats`), and the parts directory joined into the
output file (`assemble`)."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cxnlp.io.isolate import Failed, predict_isolated
from cxnlp.io.tables import (
    escape_formulas,
    table_format,
    write_table,
)
from cxnlp.io.validate import text_problem
from cxnlp.labels import (
    LANGS,
    RESULT_COLUMNS,
    SENTIMENTS,
    encode_topics,
    probability_column,
    topics_cells,
)
from cxnlp.models.base import SentimentModel

logger = logging.getLogger(__name__)


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
    """Why a cell cannot be classified, or None when it can (`cxnlp.io.validate.text_problem`,
    the rule every surface applies)."""
    problem = text_problem(value)
    return problem.message if problem is not None else None


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
        langs = [given[i] if given[i] in LANGS else None for i in ok]
    results: dict[int, dict] = {}
    # One failing row fails alone (cxnlp.io.isolate), not its whole chunk.
    for i, p in zip(ok, predict_isolated(model.predict, texts, langs), strict=True):
        if isinstance(p, Failed):
            errors[i] = p.error
        else:
            results[i] = p.to_dict()
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
        urgency = (r or {}).get("urgency") or {}
        columns["urgency"].append(round(float(urgency["score"]), 4) if r and urgency else None)
        columns["urgency_level"].append(urgency.get("level") if r and urgency else None)
        columns["urgency_evidence"].append(
            json.dumps(urgency.get("evidence", []), ensure_ascii=False) if r and urgency else None
        )
        columns["error"].append(errors[i])
    clashing = [c for c in RESULT_COLUMNS if c in frame.columns]
    if clashing:
        logger.warning("input columns %s are replaced by the model's results", clashing)
    for name, values in columns.items():
        out[name] = values
    return out


def check_not_input(input_path: str | Path, output_path: str | Path) -> None:
    """ValueError when the output file is the input file (the same path, or a link to it): the
    result would replace the data it was made from."""
    source, target = Path(input_path), Path(output_path)
    same = source.resolve() == target.resolve()
    if not same and source.is_file() and target.exists():
        same = source.samefile(target)
    if same:
        raise ValueError(
            f"the output {output_path} is the input file itself: it would be overwritten; "
            "write the result to another file (e.g. -o reviews_labeled.csv)"
        )


def assemble(parts: list[Path], output_path: Path, excel_safe: bool = False) -> None:
    """Join the parts into the output, written under a temporary name and renamed into place.
    Every text and id is written as it was read, unless `excel_safe` (CSV only) escapes the
    cells a spreadsheet would run as formulas (`escape_formulas`)."""
    tmp = output_path.with_name(f".{output_path.name}.tmp{output_path.suffix}")
    kind = table_format(output_path)
    if kind in ("csv", "jsonl"):
        with open(tmp, "w", encoding="utf-8-sig" if kind == "csv" else "utf-8", newline="") as out:
            for i, part in enumerate(parts):
                frame = pd.read_parquet(part)
                if kind == "csv":
                    sep = "\t" if output_path.suffix.lower() == ".tsv" else ","
                    if excel_safe:  # on request only: it changes the texts and ids
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


# The run a parts directory belongs to (input, settings, model), written when it is created.
STATE_FILE = "state.json"


def open_work_dir(work: Path, state: dict, resume: bool) -> None:
    """Make `work` the parts directory of the run `state` describes: with `resume`, one left by
    the same run is kept (its finished parts are reused); anything else there is removed."""
    if work.exists() and not (resume and _same_run(work, state)):
        if resume:
            logger.warning("%s belongs to another run; starting over", work)
        shutil.rmtree(work)
    if not work.exists():
        # Written only into a fresh work directory: rewriting it on resume would leave it empty for
        # a moment, and a run killed then would throw every finished part away on the next resume.
        work.mkdir(parents=True)
        (work / STATE_FILE).write_text(json.dumps(state))


def _same_run(work: Path, state: dict) -> bool:
    try:
        return json.loads((work / STATE_FILE).read_text()) == state
    except (OSError, ValueError):
        return False
