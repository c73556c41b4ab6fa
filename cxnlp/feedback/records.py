"""Validation: the store's records from a frame of `cxnlp classify` output, or from the
service's per-item results. Nothing is written here; a bad row raises before any transaction.

A record holds one value per `cxnlp.feedback.models.RECORD_FIELDS` (the item table's columns
the store does not set itself) plus its `topics`.

>>> import pandas as pd
>>> frame = pd.DataFrame({"id": [1], "text": ["late"], "sentiment": ["negative"],
...     "p_positive": [0.1], "p_neutral": [0.1], "p_negative": [0.8], "confidence": [0.8],
...     "lang": ["en"], "topics": ['[{"topic": "delivery", "polarity": "negative"}]'],
...     "error": [None]})
>>> record = records_from_frame(frame)[0]
>>> record["item_id"], record["sentiment"], record["topics"][0]["topic"]
('1', 'negative', 'delivery')
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxnlp.feedback.checks import record_problem
from cxnlp.feedback.models import DIMENSION_LEN, ID_LEN, RECORD_FIELDS
from cxnlp.io.validate import name_problem
from cxnlp.labels import (
    CUSTOMER_ID_COLUMN,
    OPTIONAL_RESULT_COLUMNS,
    PROBABILITY_COLUMNS,
    RESULT_COLUMNS,
    SENTIMENTS,
    decode_topics,
    probability_column,
)
from cxnlp.modeldir import CONFIG_FILE
from cxnlp.report.scores import ScoreSpec, score_specs

# Columns of an export that become indexed columns instead of `dimensions` entries.
INDEXED_DIMENSIONS = ("channel", "product")
# Result columns a file may lack: those that came after the first stores (`mixed`, urgency) and
# `truncated`, which only the service writes.
OPTIONAL_COLUMNS = (*OPTIONAL_RESULT_COLUMNS, "truncated")
_MAX_PROBLEMS = 5


def model_identity(model: Any) -> tuple[str | None, str | None]:
    """(name, version) of a loaded model: its directory name and the first 12 hex digits of the
    SHA-256 of its `config.json` (which changes whenever the model is retrained)."""
    source = getattr(model, "source_", None)
    if not source:
        return getattr(model, "name", None) or type(model).__name__, None
    path = Path(source)
    config = path / CONFIG_FILE
    version = hashlib.sha256(config.read_bytes()).hexdigest()[:12] if config.exists() else None
    return path.name, version


def _blank(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _as_id(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        value = value.item()
    return str(value).strip()


def _id_or_none(value: Any) -> str | None:
    """`_as_id` of a cell, None where it is blank."""
    if type(value) is str:
        return value.strip() or None
    return None if _blank(value) else _as_id(value)


def _as_text(value: Any) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        value = value.item()
    return str(value).strip()


def _as_bool(value: Any) -> bool | None:
    if _blank(value):
        return None
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return None
    return bool(value)


def _as_json_list(value: Any) -> list | None:
    """A JSON list cell (a JSON string, or a list as JSONL and the service give it); None when
    blank. ValueError when it is not a list."""
    if value is None or (not isinstance(value, list | tuple | np.ndarray) and _blank(value)):
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise ValueError("not a JSON list")
    return list(value)


def _texts(values: list) -> list[str | None]:
    """`_as_text` of each cell (strings, most cells, without a call each)."""
    out: list[str | None] = []
    for value in values:
        if type(value) is str:
            value = value.strip()
            out.append(value or None)
        else:
            out.append(_as_text(value))
    return out


def _floats(column: pd.Series) -> list[float | None] | None:
    """`_as_float` of each cell of a float column (None where it is not finite); None for a
    column of another type, whose cells are read one by one (only those of classified rows)."""
    if column.dtype.kind != "f":
        return None
    values = column.to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    return [v if ok else None for v, ok in zip(values.tolist(), finite.tolist(), strict=True)]


def _dates(data: pd.DataFrame, date_col: str | None, problem) -> list[dt.datetime | None]:
    """Each row's `date_col` as a naive UTC datetime (None where blank; `problem` where it is
    not a date)."""
    dates: list[dt.datetime | None] = [None] * len(data)
    if date_col is None or date_col not in data.columns:
        return dates
    raw = data[date_col]
    parsed = pd.DatetimeIndex(pd.to_datetime(raw, errors="coerce", utc=True, format="mixed"))
    missing = parsed.isna()
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            value = raw.iat[i]
            if not _blank(value):
                problem(i, f"{date_col} {value!r} is not a date (expected e.g. 2026-09-07)")
    naive = parsed.tz_convert(None).to_pydatetime()
    return [None if gone else when for when, gone in zip(naive, missing.tolist(), strict=True)]


def _scores(column: pd.Series, spec: ScoreSpec, problem) -> list[float | None]:
    """Each row's score (None where blank; `problem` where it is not a number, or not a whole
    number on the declared scale)."""
    bounds = spec.scale
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(numbers)
    good = finite.copy()
    if bounds:
        good &= (numbers >= bounds[0]) & (numbers <= bounds[1]) & (np.floor(numbers) == numbers)
    scores: list[float | None] = [
        v if ok else None for v, ok in zip(numbers.tolist(), good.tolist(), strict=True)
    ]
    for i in np.flatnonzero(~good).tolist():
        value = column.iat[i]
        if _blank(value):
            continue
        if not finite[i]:
            problem(i, f"{spec.column} {value!r} is not a number")
        else:
            problem(
                i,
                f"{spec.column} {value!r} is not a whole number from {bounds[0]:g} to "
                f"{bounds[1]:g}, as {spec.kind.upper()} on that scale needs (declare "
                f"another scale as {spec.kind}:LOW-HIGH={spec.column})",
            )
    return scores


def _optional(columns: Mapping[str, list], name: str, i: int, read) -> Any:
    return read(columns[name][i]) if name in columns else None


def _as_float(value: Any) -> float | None:
    if _blank(value):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def score_spec(score_col: str | None, score_kind: str | None) -> ScoreSpec | None:
    """The score column an ingest reads, None without one: a bare `score_col` with `score_kind`,
    or `KIND=COLUMN` / `KIND:LOW-HIGH=COLUMN` (a declared scale, e.g. `csat:1-7=q2`; see
    `cxnlp.report.scores.parse_score_spec`). An item holds one score.

    >>> score_spec("csat:1-7=q2", None)
    ScoreSpec(kind='csat', column='q2', scale=(1.0, 7.0))
    >>> score_spec("q1", "nps").scale
    (0, 10)
    """
    specs = score_specs(score_col, score_kind)
    return specs[0] if specs else None


def records_from_frame(
    frame: pd.DataFrame,
    *,
    text_col: str = "text",
    id_col: str = "id",
    date_col: str | None = "created_at",
    score_col: str | None = None,
    score_kind: str | None = None,
    row_offset: int = 0,
) -> list[dict[str, Any]]:
    """The store's records of a frame of `cxnlp classify` output, validated.

    Raises ValueError naming the rows (1-based, counting from `row_offset`) when an id is
    missing, a date or score cannot be read, a topics cell is not JSON, or a value is too long
    for its column; nothing is changed then. An item without a `date_col` value keeps the date it
    has in the store, else is dated when it reaches the store; a date without a zone is UTC.
    """
    missing = [c for c in (id_col, text_col) if c not in frame.columns]
    # `mixed` and urgency came later: files classified before them lack those columns.
    missing += [c for c in RESULT_COLUMNS if c not in frame.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(
            f"missing column(s) {missing}; the table has {list(frame.columns)}. Ingest takes "
            "the output of `cxnlp classify` (pass --id-col / --text-col when they are named "
            "otherwise)"
        )
    spec = score_spec(score_col, score_kind)
    if spec is not None and spec.column not in frame.columns:
        raise ValueError(f"no score column {spec.column!r}; the table has {list(frame.columns)}")
    data = frame.reset_index(drop=True)
    problems: list[str] = []

    def problem(i: int, message: str) -> None:
        if len(problems) < _MAX_PROBLEMS:
            problems.append(f"row {row_offset + i + 1}: {message}")
        else:
            problems.append("")

    dates = _dates(data, date_col, problem)
    scores: list[float | None] = [None] * len(data)
    score_kind = spec.kind if spec is not None else None
    if spec is not None:
        scores = _scores(data[spec.column], spec, problem)
    skip = {text_col, id_col, date_col, spec.column if spec else None}
    skip |= {*RESULT_COLUMNS, *OPTIONAL_COLUMNS}
    dimension_cols = [c for c in data.columns if c not in skip]
    columns = {c: data[c].tolist() for c in data.columns}
    # Each column read once, as a whole (the cells' own readers where a fast path does not fit).
    ids = [_id_or_none(v) for v in columns[id_col]]
    texts = [
        v if type(v) is str else (str(v) if isinstance(v, str) or not _blank(v) else None)
        for v in columns[text_col]
    ]
    errors = _texts(columns["error"])
    sentiments = [s.lower() if s else None for s in _texts(columns["sentiment"])]
    langs = _texts(columns["lang"])
    dimension_values = [(str(c), _texts(columns[c])) for c in dimension_cols]
    floats = {
        c: _floats(data[c]) if c in columns else None
        for c in (*PROBABILITY_COLUMNS, "confidence", "urgency")
    }
    truncated = [_as_bool(v) for v in columns["truncated"]] if "truncated" in columns else None
    mixed = [_as_bool(v) for v in columns["mixed"]] if "mixed" in columns else None
    levels = _texts(columns["urgency_level"]) if "urgency_level" in columns else None
    # NUL characters and lone surrogates are looked for in the whole batch at once; only a batch
    # that holds one is checked row by row (`record_problem`), to name the row.
    names_ok = (
        name_problem(
            "\n".join(
                [
                    *(name for name, _ in dimension_values),
                    *(v for v in ids if v is not None),
                    *(v for v in texts if v is not None),
                    *(v for _, values in dimension_values for v in values if v is not None),
                ]
            )
        )
        is None
    )

    def cell(name: str, i: int, read) -> Any:
        return floats[name][i] if floats[name] is not None else read(columns[name][i])

    records = []
    for i in range(len(data)):
        item_id = ids[i]
        if item_id is None:
            problem(i, f"the id ({id_col}) is empty: every stored item needs one")
            continue
        error = errors[i]
        sentiment = sentiments[i]
        if error is None and sentiment not in SENTIMENTS:
            error = "no sentiment in the row"
        ok = error is None
        topics = decode_topics(columns["topics"][i], sentiment) if ok else []
        if topics is None:
            problem(i, f"topics {str(columns['topics'][i])[:60]!r} is not a JSON list of topics")
            continue
        text = texts[i]
        if text is not None and "\x00" in text:
            problem(i, "the text holds a NUL character, which the database cannot store")
            continue
        dims = {}
        for name, values in dimension_values:
            value = values[i]
            if value is not None:
                dims[name] = value
        customer = dims.pop(CUSTOMER_ID_COLUMN, None)
        if customer is not None and len(customer) > ID_LEN:
            problem(i, f"{CUSTOMER_ID_COLUMN} is longer than {ID_LEN} characters")
        indexed = {}
        for c in INDEXED_DIMENSIONS:
            value = dims.pop(c, None)
            if value is not None and len(value) > DIMENSION_LEN:
                problem(i, f"{c} is longer than {DIMENSION_LEN} characters")
            indexed[c] = value
        if len(item_id) > ID_LEN:
            problem(i, f"the id is longer than {ID_LEN} characters")
        when = dates[i]
        score = scores[i]
        # Every column the store does not set itself; a result column the frame lacks is None.
        record: dict[str, Any] = dict.fromkeys(RECORD_FIELDS)
        record.update(
            item_id=item_id,
            text=text,
            # None: no date in the export; `ingest_records` keeps a stored item's own date, else
            # dates it when it reaches the store.
            created_at=when,
            day=when.date() if when else None,
            **indexed,
            dimensions=dims,
            customer_id=customer,
            score=score,
            score_kind=score_kind if score is not None else None,
            error=error,
            truncated=truncated[i] if truncated is not None else None,
        )
        if ok:
            record.update(
                sentiment=sentiment,
                lang=langs[i],
                confidence=cell("confidence", i, _as_float),
                mixed=mixed[i] if mixed is not None else None,
                urgency=cell("urgency", i, _as_float) if "urgency" in columns else None,
                urgency_level=levels[i] if levels is not None else None,
                **{c: cell(c, i, _as_float) for c in PROBABILITY_COLUMNS},
            )
            try:
                record["urgency_evidence"] = _optional(
                    columns, "urgency_evidence", i, _as_json_list
                )
            except ValueError:
                cell_text = str(columns["urgency_evidence"][i])[:60]
                problem(i, f"urgency_evidence {cell_text!r} is not a JSON list of cues")
                continue
        record["topics"] = topics
        if not names_ok:
            unstorable = record_problem(record, INDEXED_DIMENSIONS)
            if unstorable is not None:
                problem(i, unstorable)
                continue
        if ok and any(record[c] is None for c in PROBABILITY_COLUMNS):
            record.update(error="no probabilities in the row", sentiment=None, topics=[])
        records.append(record)
    if problems:
        more = len(problems) - _MAX_PROBLEMS
        shown = "; ".join(p for p in problems if p)
        raise ValueError(
            f"cannot store these items: {shown}" + (f" (and {more} more)" if more > 0 else "")
        )
    return records


def frame_from_items(items: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A frame in `cxnlp classify`'s output layout from the service's per-item results
    (`id`, `text`, extra fields, `sentiment`, `probabilities`, `confidence`, `lang`, `topics`,
    `mixed`, `truncated`, `urgency` as {"score", "level", "evidence"}), every result field
    kept: `urgency` becomes the three `cxnlp.labels.URGENCY_COLUMNS`."""
    rows = []
    for item in items:
        row = {k: v for k, v in item.items() if k not in ("probabilities", "topics", "urgency")}
        probabilities = item.get("probabilities") or {}
        for label in SENTIMENTS:
            row[probability_column(label)] = probabilities.get(label)
        urgency = item.get("urgency")
        if isinstance(urgency, Mapping):
            row["urgency"], row["urgency_level"] = urgency.get("score"), urgency.get("level")
            row["urgency_evidence"] = json.dumps(urgency.get("evidence") or [], ensure_ascii=False)
        row["topics"] = json.dumps(item.get("topics") or [], ensure_ascii=False)
        row.setdefault("error", None)
        rows.append(row)
    return pd.DataFrame(rows)
