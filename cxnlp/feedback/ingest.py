"""Analyzed items into the feedback store: from a frame of `cxnlp classify` output, from such a
file, or from the service's requests.

Each call is one transaction: either every item of it is stored (inserted, or updated in place
when its (dataset, id) is already there) or none is and the store is as it was. The per-day
aggregates are updated in the same transaction, by the difference each item makes (its old
contribution out, its new one in), so they always equal a GROUP BY over the items. Writers are
serialised (PostgreSQL advisory lock, SQLite's write lock) so that two ingests of one item never
both count it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import JSON, Connection, delete, insert, select, tuple_

from cxnlp.feedback.cases import cases_after_ingest
from cxnlp.feedback.checks import check_dimension_keys, record_problem
from cxnlp.feedback.db import FeedbackStore, lock_for_writing, open_store
from cxnlp.feedback.models import (
    DAILY,
    DAILY_TOPICS,
    DIMENSION_LEN,
    DIMENSIONS,
    ID_LEN,
    ITEMS,
    STAT_MEASURES,
    TOPIC_TOTALS,
    TOPICS,
    TOTALS,
)
from cxnlp.io.validate import check_name
from cxnlp.labels import (
    CUSTOMER_ID_COLUMN,
    OPTIONAL_RESULT_COLUMNS,
    OUTPUT_PROBABILITY_COLUMNS,
    RESULT_COLUMNS,
    SCORE_KINDS,
    SENTIMENTS,
    decode_topics,
    probability_column,
)
from cxnlp.modeldir import CONFIG_FILE
from cxnlp.report.scores import DETRACTOR_MAX, PROMOTER_MIN, SATISFIED_MIN

logger = logging.getLogger(__name__)

# Columns of an export that become indexed columns instead of `dimensions` entries.
INDEXED_DIMENSIONS = ("channel", "product")
# Values per dimension and batch recorded for the dashboard's filter menus (an id-like column
# would otherwise copy itself there).
MENU_VALUES_PER_BATCH = 200
_LOOKUP_CHUNK = 500
_WRITE_CHUNK = 2000


@dataclass
class IngestStats:
    """What one ingest did."""

    dataset: str
    rows: int
    inserted: int
    updated: int
    errors: int
    seconds: float

    @property
    def items_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


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


def _as_text(value: Any) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        value = value.item()
    return str(value).strip()


def _as_float(value: Any) -> float | None:
    if _blank(value):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _parse_topics(value: Any, sentiment: str | None) -> list[dict[str, Any]] | None:
    return decode_topics(value, sentiment)


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
    missing += [
        c for c in RESULT_COLUMNS if c not in frame.columns and c not in OPTIONAL_RESULT_COLUMNS
    ]
    if missing:
        raise ValueError(
            f"missing column(s) {missing}; the table has {list(frame.columns)}. Ingest takes "
            "the output of `cxnlp classify` (pass --id-col / --text-col when they are named "
            "otherwise)"
        )
    if (score_col is None) != (score_kind is None):
        raise ValueError("score_col and score_kind go together: pass both or neither")
    if score_kind is not None and score_kind not in SCORE_KINDS:
        raise ValueError(f"unknown score kind {score_kind!r}; expected one of {list(SCORE_KINDS)}")
    if score_col is not None and score_col not in frame.columns:
        raise ValueError(f"no score column {score_col!r}; the table has {list(frame.columns)}")
    data = frame.reset_index(drop=True)
    problems: list[str] = []

    def problem(i: int, message: str) -> None:
        if len(problems) < 5:
            problems.append(f"row {row_offset + i + 1}: {message}")
        else:
            problems.append("")

    dates: list[dt.datetime | None] = [None] * len(data)
    if date_col is not None and date_col in data.columns:
        raw = data[date_col]
        parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
        for i, (value, when) in enumerate(zip(raw.tolist(), parsed.tolist(), strict=True)):
            if _blank(value):
                continue
            if when is pd.NaT or when is None or pd.isna(when):
                problem(i, f"{date_col} {value!r} is not a date (expected e.g. 2026-09-07)")
            else:
                dates[i] = when.tz_convert(None).to_pydatetime()
    scores: list[float | None] = [None] * len(data)
    if score_col is not None:
        from cxnlp.report.scores import SCORE_RANGES

        bounds = SCORE_RANGES[score_kind]
        numbers = pd.to_numeric(data[score_col], errors="coerce")
        for i, (value, number) in enumerate(zip(data[score_col], numbers, strict=True)):
            if _blank(value):
                continue
            if pd.isna(number) or not math.isfinite(float(number)):
                problem(i, f"{score_col} {value!r} is not a number")
            elif bounds and not (bounds[0] <= number <= bounds[1] and float(number).is_integer()):
                problem(
                    i,
                    f"{score_col} {value!r} is not a whole number from {bounds[0]:g} to "
                    f"{bounds[1]:g}, as {score_kind.upper()} needs",
                )
            else:
                scores[i] = float(number)
    skip = {text_col, id_col, date_col, score_col, *RESULT_COLUMNS}
    dimension_cols = [c for c in data.columns if c not in skip]
    columns = {c: data[c].tolist() for c in data.columns}
    records = []
    for i in range(len(data)):
        item_id = columns[id_col][i]
        if _blank(item_id):
            problem(i, f"the id ({id_col}) is empty: every stored item needs one")
            continue
        item_id = _as_id(item_id)
        error = _as_text(columns["error"][i])
        sentiment = _as_text(columns["sentiment"][i])
        sentiment = sentiment.lower() if sentiment else None
        if error is None and sentiment not in SENTIMENTS:
            error = "no sentiment in the row"
        ok = error is None
        topics = _parse_topics(columns["topics"][i], sentiment) if ok else []
        if topics is None:
            problem(i, f"topics {str(columns['topics'][i])[:60]!r} is not a JSON list of topics")
            continue
        text = columns[text_col][i]
        text = None if _blank(text) and not isinstance(text, str) else str(text)
        if text is not None and "\x00" in text:
            problem(i, "the text holds a NUL character, which the database cannot store")
            continue
        dims = {}
        for c in dimension_cols:
            value = _as_text(columns[c][i])
            if value is not None:
                dims[str(c)] = value
        customer = dims.pop(CUSTOMER_ID_COLUMN, None)
        if customer is not None and len(customer) > ID_LEN:
            problem(i, f"{CUSTOMER_ID_COLUMN} is longer than {ID_LEN} characters")
        indexed = {}
        for c in INDEXED_DIMENSIONS:
            value = dims.pop(c, None)
            if value is not None and len(value) > DIMENSION_LEN:
                problem(i, f"{c} is longer than {DIMENSION_LEN} characters")
            indexed[c] = value
        if len(item_id) > 300:
            problem(i, "the id is longer than 300 characters")
        when = dates[i]
        score = scores[i]
        record = {
            "item_id": item_id,
            "text": text,
            "lang": _as_text(columns["lang"][i]) if ok else None,
            # None: no date in the export; `ingest_records` keeps a stored item's own date, else
            # dates it when it reaches the store.
            "created_at": when,
            "day": when.date() if when else None,
            **indexed,
            "dimensions": dims,
            "score": score,
            "score_kind": score_kind if score is not None else None,
            "sentiment": sentiment if ok else None,
            **{c: _as_float(columns[c][i]) if ok else None for c in OUTPUT_PROBABILITY_COLUMNS},
            "confidence": _as_float(columns["confidence"][i]) if ok else None,
            "error": error,
            "topics": topics,
            "customer_id": customer,
            "urgency": _as_float(columns["urgency"][i]) if ok and "urgency" in columns else None,
            "urgency_level": (
                _as_text(columns["urgency_level"][i]) if ok and "urgency_level" in columns else None
            ),
        }
        unstorable = record_problem(record, INDEXED_DIMENSIONS)
        if unstorable is not None:
            problem(i, unstorable)
            continue
        if ok and any(record[c] is None for c in OUTPUT_PROBABILITY_COLUMNS):
            record["error"], record["sentiment"] = "no probabilities in the row", None
            record["topics"] = []
        records.append(record)
    if problems:
        more = len(problems) - 5
        shown = "; ".join(p for p in problems if p)
        raise ValueError(
            f"cannot store these items: {shown}" + (f" (and {more} more)" if more > 0 else "")
        )
    return records


def _stat_key(dataset: str, r: Mapping[str, Any]) -> tuple:
    return (
        dataset,
        r["day"],
        r["lang"] or "",
        r["channel"] or "",
        r["sentiment"] or "",
        r["score_kind"] or "",
    )


def micro(p: float | None) -> int:
    """A probability in millionths, as the aggregates sum them."""
    return math.floor(p * 1_000_000 + 0.5) if p is not None else 0


def _measures(r: Mapping[str, Any]) -> np.ndarray:
    score, kind = r["score"], r["score_kind"]
    scored = score is not None
    return np.array(
        [
            1.0,
            *(micro(r[c]) for c in OUTPUT_PROBABILITY_COLUMNS),
            1.0 if scored else 0.0,
            score if scored else 0.0,
            score * score if scored else 0.0,
            1.0 if scored and kind == "nps" and score >= PROMOTER_MIN else 0.0,
            1.0 if scored and kind == "nps" and score <= DETRACTOR_MAX else 0.0,
            1.0 if scored and kind == "csat" and score >= SATISFIED_MIN else 0.0,
        ]
    )


class _Deltas:
    """Per-key changes of the daily aggregates, summed in Python and applied in one statement."""

    def __init__(self) -> None:
        self.stats: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(len(STAT_MEASURES)))
        self.topics: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(len(STAT_MEASURES)))
        self.removed = False

    def add(self, dataset: str, r: Mapping[str, Any], topics: Iterable[tuple], sign: float) -> None:
        key, values = _stat_key(dataset, r), _measures(r) * sign
        self.stats[key] += values
        for topic, polarity in topics:
            self.topics[(*key, topic, polarity or "")] += values
        self.removed |= sign < 0


def _rollup_rows(deltas: dict[tuple, np.ndarray], keys: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for key, values in deltas.items():
        if not values.any():
            continue
        row = dict(zip(keys, key, strict=True))
        for name, value in zip(STAT_MEASURES, values.tolist(), strict=True):
            row[name] = round(value) if name in _COUNT_MEASURES else value
        rows.append(row)
    return rows


_COUNT_MEASURES = {
    "n",
    "score_n",
    "promoters",
    "detractors",
    "satisfied",
    *(f"{c}_sum" for c in OUTPUT_PROBABILITY_COLUMNS),
}


def _upsert(
    connection: Connection, table, conflict: Sequence[str], update: Iterable[str], add: bool
) -> Any:
    """INSERT ... ON CONFLICT (`conflict`) DO UPDATE: `update` columns take the new value (or,
    with `add`, the old plus the new); DO NOTHING when `update` is empty."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - only the two supported databases
        raise ValueError(f"the feedback store supports SQLite and PostgreSQL, not {dialect}")
    stmt = dialect_insert(table)
    update = list(update)
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=list(conflict))
    excluded = stmt.excluded
    sets = {c: (table.c[c] + excluded[c]) if add else excluded[c] for c in update}
    return stmt.on_conflict_do_update(index_elements=list(conflict), set_=sets)


def _chunks(values: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


_OLD_COLUMNS = (
    "pk",
    "item_id",
    "created_at",
    "day",
    "lang",
    "channel",
    "product",
    "sentiment",
    "score_kind",
    "score",
    *OUTPUT_PROBABILITY_COLUMNS,
)
_KEEP_ON_UPDATE = {"pk", "dataset", "item_id", "ingested_at"}


class _CoreWriter:
    """Writes through SQLAlchemy Core statements (SQLite: executemany is fast there)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def old_items(self, dataset: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        c = ITEMS.c
        found = []
        for part in _chunks(ids, _LOOKUP_CHUNK):
            query = select(*(c[k] for k in _OLD_COLUMNS)).where(
                c.dataset == dataset, c.item_id.in_(part)
            )
            found += [dict(r) for r in self.connection.execute(query).mappings()]
        return found

    def old_topics(self, pks: Sequence[int]) -> list[tuple]:
        t = TOPICS.c
        found = []
        for part in _chunks(pks, _LOOKUP_CHUNK):
            query = select(t.item_pk, t.topic, t.polarity).where(t.item_pk.in_(part))
            found += [tuple(r) for r in self.connection.execute(query)]
        return found

    def delete_topics(self, pks: Sequence[int]) -> None:
        for part in _chunks(pks, _LOOKUP_CHUNK):
            self.connection.execute(delete(TOPICS).where(TOPICS.c.item_pk.in_(part)))

    def upsert_items(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        stmt = _upsert(
            self.connection,
            ITEMS,
            ("dataset", "item_id"),
            {c.name for c in ITEMS.c if c.name not in _KEEP_ON_UPDATE},
            add=False,
        ).returning(ITEMS.c.item_id, ITEMS.c.pk)
        pks: dict[str, int] = {}
        for part in _chunks(rows, _WRITE_CHUNK):
            pks.update((r[0], r[1]) for r in self.connection.execute(stmt, list(part)))
        return pks

    def insert(self, table, rows: list[dict[str, Any]]) -> None:
        for part in _chunks(rows, _WRITE_CHUNK):
            self.connection.execute(insert(table), list(part))

    def add_to(self, table, rows: list[dict[str, Any]]) -> None:
        keys = list(table.primary_key.columns.keys())
        stmt = _upsert(self.connection, table, keys, STAT_MEASURES, add=True)
        for part in _chunks(rows, _WRITE_CHUNK):
            self.connection.execute(stmt, list(part))

    def insert_missing(self, table, rows: list[dict[str, Any]]) -> None:
        keys = list(table.primary_key.columns.keys())
        stmt = _upsert(self.connection, table, keys, (), add=False)
        for part in _chunks(rows, _WRITE_CHUNK):
            self.connection.execute(stmt, list(part))

    def delete_empty(self, table, keys: list[tuple]) -> None:
        columns = list(table.primary_key.columns)
        for part in _chunks(keys, _LOOKUP_CHUNK):
            self.connection.execute(
                delete(table).where(tuple_(*columns).in_(list(part)), table.c.n <= 0)
            )


def _sqlite_converter(column) -> Any:
    # What SQLAlchemy's SQLite types store: ISO dates, "YYYY-MM-DD HH:MM:SS.ffffff", JSON text.
    kind = type(column.type).__name__
    if kind == "DateTime":
        return lambda v: v.strftime("%Y-%m-%d %H:%M:%S.%f") if v is not None else None
    if kind == "Date":
        return lambda v: v.isoformat() if isinstance(v, dt.date) else v
    if kind == "JSON":
        return lambda v: json.dumps(v, ensure_ascii=False)
    return None


class _SqliteWriter(_CoreWriter):
    """Writes through the driver's executemany with plain tuples, skipping SQLAlchemy's
    per-row parameter processing (most of the time of a Core executemany)."""

    def _many(self, table, sql: str, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        values = [[r[c] for c in columns] for r in rows]
        for i, c in enumerate(columns):
            convert = _sqlite_converter(table.c[c])
            if convert is not None:
                for v in values:
                    v[i] = convert(v[i])
        self.connection.exec_driver_sql(sql, [tuple(v) for v in values])

    def _insert_sql(self, table, columns: Sequence[str], conflict: str = "") -> str:
        marks = ", ".join("?" for _ in columns)
        return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks}) {conflict}"

    def upsert_items(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        if not rows:
            return {}
        columns = [c.name for c in ITEMS.c if c.name != "pk"]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in _KEEP_ON_UPDATE)
        conflict = f"ON CONFLICT (dataset, item_id) DO UPDATE SET {updates}"
        self._many(ITEMS, self._insert_sql(ITEMS, columns, conflict), columns, rows)
        dataset = rows[0]["dataset"]
        pks: dict[str, int] = {}
        c = ITEMS.c
        for part in _chunks([r["item_id"] for r in rows], _LOOKUP_CHUNK):
            query = select(c.item_id, c.pk).where(c.dataset == dataset, c.item_id.in_(part))
            pks.update((r[0], r[1]) for r in self.connection.execute(query))
        return pks

    def insert(self, table, rows: list[dict[str, Any]]) -> None:
        if rows:
            columns = list(rows[0])
            self._many(table, self._insert_sql(table, columns), columns, rows)

    def add_to(self, table, rows: list[dict[str, Any]]) -> None:
        if rows:
            columns = list(rows[0])
            keys = ", ".join(table.primary_key.columns.keys())
            sets = ", ".join(f"{m} = {table.name}.{m} + excluded.{m}" for m in STAT_MEASURES)
            conflict = f"ON CONFLICT ({keys}) DO UPDATE SET {sets}"
            self._many(table, self._insert_sql(table, columns, conflict), columns, rows)

    def insert_missing(self, table, rows: list[dict[str, Any]]) -> None:
        if rows:
            columns = list(rows[0])
            keys = ", ".join(table.primary_key.columns.keys())
            sql = self._insert_sql(table, columns, f"ON CONFLICT ({keys}) DO NOTHING")
            self._many(table, sql, columns, rows)


class _PostgresWriter(_CoreWriter):
    """Writes through psycopg's COPY into temporary tables, then one INSERT ... SELECT ... ON
    CONFLICT per table: an order of magnitude faster than multi-row INSERTs."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.raw = connection.connection.dbapi_connection

    def old_items(self, dataset: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        with self.raw.cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(_OLD_COLUMNS)} FROM {ITEMS.name} "
                "WHERE dataset = %s AND item_id = ANY(%s)",
                (dataset, list(ids)),
            )
            return [dict(zip(_OLD_COLUMNS, r, strict=True)) for r in cur.fetchall()]

    def old_topics(self, pks: Sequence[int]) -> list[tuple]:
        with self.raw.cursor() as cur:
            cur.execute(
                f"SELECT item_pk, topic, polarity FROM {TOPICS.name} WHERE item_pk = ANY(%s)",
                (list(pks),),
            )
            return cur.fetchall()

    def delete_topics(self, pks: Sequence[int]) -> None:
        with self.raw.cursor() as cur:
            cur.execute(f"DELETE FROM {TOPICS.name} WHERE item_pk = ANY(%s)", (list(pks),))

    def _stage(self, cur, table, columns: Sequence[str], rows: list[dict[str, Any]]) -> str:
        staging = f"_cxnlp_stage_{table.name}"
        cols = ", ".join(columns)
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} ON COMMIT DROP AS "
            f"SELECT {cols} FROM {table.name} WITH NO DATA"
        )
        cur.execute(f"TRUNCATE {staging}")
        json_cols = {c for c in columns if isinstance(table.c[c].type, JSON)}
        with cur.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [
                        json.dumps(row[c], ensure_ascii=False) if c in json_cols else row[c]
                        for c in columns
                    ]
                )
        return staging

    def upsert_items(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        if not rows:
            return {}
        columns = [c.name for c in ITEMS.c if c.name != "pk"]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in _KEEP_ON_UPDATE)
        with self.raw.cursor() as cur:
            staging = self._stage(cur, ITEMS, columns, rows)
            cur.execute(
                f"INSERT INTO {ITEMS.name} ({', '.join(columns)}) "
                f"SELECT {', '.join(columns)} FROM {staging} "
                f"ON CONFLICT (dataset, item_id) DO UPDATE SET {updates} RETURNING item_id, pk"
            )
            return dict(cur.fetchall())

    def insert(self, table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = list(rows[0])
        with (
            self.raw.cursor() as cur,
            cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([row[c] for c in columns])

    def add_to(self, table, rows: list[dict[str, Any]]) -> None:
        self._merge(table, rows, add=True)

    def insert_missing(self, table, rows: list[dict[str, Any]]) -> None:
        self._merge(table, rows, add=False)

    def _merge(self, table, rows: list[dict[str, Any]], add: bool) -> None:
        if not rows:
            return
        columns = list(rows[0])
        keys = ", ".join(table.primary_key.columns.keys())
        if add:
            sets = ", ".join(f"{m} = {table.name}.{m} + EXCLUDED.{m}" for m in STAT_MEASURES)
            action = f"DO UPDATE SET {sets}"
        else:
            action = "DO NOTHING"
        with self.raw.cursor() as cur:
            staging = self._stage(cur, table, columns, rows)
            cur.execute(
                f"INSERT INTO {table.name} ({', '.join(columns)}) "
                f"SELECT {', '.join(columns)} FROM {staging} ON CONFLICT ({keys}) {action}"
            )


def ingest_records(
    connection: Connection,
    records: Sequence[Mapping[str, Any]],
    *,
    dataset: str,
    model_name: str | None = None,
    model_version: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[int, int]:
    """Write validated records (see `records_from_frame`) inside the caller's transaction;
    returns (inserted, updated). Records with the same id: the last one wins."""
    if not dataset or len(dataset) > DIMENSION_LEN:
        raise ValueError(f"a dataset name of 1 to {DIMENSION_LEN} characters is needed")
    check_name(dataset, "the dataset name")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    lock_for_writing(connection)
    check_dimension_keys(connection, dataset, records, INDEXED_DIMENSIONS)
    writers = {"postgresql": _PostgresWriter, "sqlite": _SqliteWriter}
    writer = writers.get(connection.dialect.name, _CoreWriter)(connection)
    latest = {r["item_id"]: r for r in records}
    deltas = _Deltas()
    old = {row["pk"]: row for row in writer.old_items(dataset, list(latest))}
    old_pks = {row["item_id"]: pk for pk, row in old.items()}
    if old:
        topics: dict[int, list[tuple]] = defaultdict(list)
        for pk, topic, polarity in writer.old_topics(list(old)):
            topics[pk].append((topic, polarity))
        for pk, row in old.items():
            deltas.add(dataset, row, topics[pk], -1.0)
    item_rows = []
    for r in latest.values():
        if r["created_at"] is None:
            stored = old.get(old_pks.get(r["item_id"]))
            when = stored["created_at"] if stored else now
            r = latest[r["item_id"]] = {**r, "created_at": when, "day": _as_day(when)}
        deltas.add(dataset, r, [(t["topic"], t["polarity"]) for t in r["topics"]], 1.0)
        row = {k: v for k, v in r.items() if k != "topics"}
        row.update(
            dataset=dataset,
            model_name=model_name,
            model_version=model_version,
            ingested_at=now,
            updated_at=now,
        )
        item_rows.append(row)
    if old:
        writer.delete_topics(list(old))
    pks = writer.upsert_items(item_rows)
    writer.insert(
        TOPICS,
        [
            {
                "item_pk": pks[r["item_id"]],
                "topic": t["topic"],
                "polarity": t["polarity"],
                "score": t["score"],
            }
            for r in latest.values()
            for t in r["topics"]
        ],
    )
    # The totals drop language and channel (positions 2 and 3 of a key).
    totals = _project(deltas.stats)
    topic_totals = _project(deltas.topics)
    aggregates = (
        (DAILY, deltas.stats),
        (DAILY_TOPICS, deltas.topics),
        (TOTALS, totals),
        (TOPIC_TOTALS, topic_totals),
    )
    for table, touched in aggregates:
        writer.add_to(table, _rollup_rows(touched, table.primary_key.columns.keys()))
    if deltas.removed:
        # Keys that an update emptied (an item that moved to another day or sentiment).
        for table, touched in aggregates:
            writer.delete_empty(table, [k for k, v in touched.items() if v[0] < 0])
    writer.insert_missing(DIMENSIONS, _dimension_rows(dataset, latest.values()))
    cases_after_ingest(connection, dataset, latest.values(), now)
    return len(latest) - len(old_pks), len(old_pks)


def _project(deltas: dict[tuple, np.ndarray]) -> dict[tuple, np.ndarray]:
    out: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(len(STAT_MEASURES)))
    for key, values in deltas.items():
        out[key[:2] + key[4:]] += values
    return out


def _as_day(when: dt.datetime | dt.date | str) -> dt.date:
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when)
    return when.date() if isinstance(when, dt.datetime) else when


def _dimension_rows(dataset: str, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for r in records:
        pairs = list(r["dimensions"].items())
        pairs += [(c, r[c]) for c in INDEXED_DIMENSIONS if r[c] is not None]
        for key, value in pairs:
            values = seen[key]
            if len(values) < MENU_VALUES_PER_BATCH and len(value) <= DIMENSION_LEN:
                values.add(value)
    return [
        {"dataset": dataset, "key": key[:DIMENSION_LEN], "value": value}
        for key, values in seen.items()
        for value in sorted(values)
    ]


def _store(store: FeedbackStore | str | None) -> tuple[FeedbackStore, bool]:
    if isinstance(store, FeedbackStore):
        return store, False
    return open_store(store), True


def ingest_frame(
    frame: pd.DataFrame,
    *,
    dataset: str,
    store: FeedbackStore | str | None = None,
    text_col: str = "text",
    id_col: str = "id",
    date_col: str | None = "created_at",
    score_col: str | None = None,
    score_kind: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
) -> IngestStats:
    """Store the rows of a frame of `cxnlp classify` output under `dataset`, in one transaction.
    `store` is an open store, a database URL, or None for `$CXNLP_DATABASE_URL` / the default."""
    started = time.perf_counter()
    records = records_from_frame(
        frame,
        text_col=text_col,
        id_col=id_col,
        date_col=date_col,
        score_col=score_col,
        score_kind=score_kind,
    )
    target, owned = _store(store)
    try:
        with target.engine.begin() as connection:
            inserted, updated = ingest_records(
                connection,
                records,
                dataset=dataset,
                model_name=model_name,
                model_version=model_version,
            )
    finally:
        if owned:
            target.close()
    errors = sum(r["error"] is not None for r in records)
    stats = IngestStats(
        dataset, len(records), inserted, updated, errors, time.perf_counter() - started
    )
    logger.info("stored %d items in %s (%d new)", stats.rows, dataset, inserted)
    return stats


def ingest_file(
    path: str | Path,
    *,
    dataset: str,
    store: FeedbackStore | str | None = None,
    text_col: str = "text",
    id_col: str = "id",
    date_col: str | None = "created_at",
    score_col: str | None = None,
    score_kind: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    chunk_rows: int = 10_000,
) -> IngestStats:
    """Store a file written by `cxnlp classify` (CSV, JSONL, Parquet, XLSX) under `dataset`.

    The whole file is one transaction: a bad row anywhere (named in the error) leaves the store
    as it was. Rows whose id appears twice keep the later row.
    """
    from cxnlp.io import iter_table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    started = time.perf_counter()
    target, owned = _store(store)
    rows = inserted = updated = errors = 0
    try:
        with target.engine.begin() as connection:
            offset = 0
            for chunk in iter_table(path, chunk_rows=chunk_rows):
                if offset == 0 and date_col == "created_at" and date_col not in chunk.columns:
                    logger.info("%s has no created_at column: items are dated now", path)
                records = records_from_frame(
                    chunk,
                    text_col=text_col,
                    id_col=id_col,
                    date_col=date_col,
                    score_col=score_col,
                    score_kind=score_kind,
                    row_offset=offset,
                )
                new, old = ingest_records(
                    connection,
                    records,
                    dataset=dataset,
                    model_name=model_name,
                    model_version=model_version,
                )
                offset += len(chunk)
                rows += len(records)
                inserted += new
                updated += old
                errors += sum(r["error"] is not None for r in records)
    finally:
        if owned:
            target.close()
    stats = IngestStats(dataset, rows, inserted, updated, errors, time.perf_counter() - started)
    logger.info("stored %s: %d rows (%d new) in %.1f s", path, rows, inserted, stats.seconds)
    return stats


def frame_from_items(items: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """A frame in `cxnlp classify`'s output layout from the service's per-item results
    (`id`, `text`, extra fields, `sentiment`, `probabilities`, `confidence`, `lang`, `topics`)."""
    rows = []
    for item in items:
        row = {k: v for k, v in item.items() if k not in ("probabilities", "topics", "urgency")}
        urgency = item.get("urgency") or {}
        row["urgency"], row["urgency_level"] = urgency.get("score"), urgency.get("level")
        probabilities = item.get("probabilities") or {}
        for label in SENTIMENTS:
            row[probability_column(label)] = probabilities.get(label)
        row["topics"] = json.dumps(item.get("topics") or [], ensure_ascii=False)
        row.setdefault("error", None)
        rows.append(row)
    return pd.DataFrame(rows)
