"""Writers: how a batch reaches each database inside the caller's transaction (`write_batch`:
the items, their topics, the changes of the aggregate tables and the filter menus' values).
SQLite takes plain executemany (the driver's, without SQLAlchemy's per-row processing);
PostgreSQL takes binary COPY into temporary staging tables (kept by the session, emptied at each
commit) and then one statement for the whole batch: the items' upsert, their topics, every
aggregate table's INSERT ... SELECT ... ON CONFLICT in the order of its key, and the menu values,
as data-modifying WITH parts (one round trip instead of one or more per table); any other
database the portable SQLAlchemy Core statements.

Every column list is read from the tables (`cxnlp.feedback.models`), never written here.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ARRAY,
    Connection,
    Date,
    DateTime,
    String,
    any_,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.sql import ColumnElement

try:  # the PostgreSQL driver (an extra)
    from psycopg.types.json import set_json_dumps
except ImportError:  # pragma: no cover - SQLite only
    set_json_dumps = None

from cxnlp.feedback.aggregates import Rollup, emptied, rollup_rows
from cxnlp.feedback.models import (
    AGGREGATE_INPUTS,
    DIMENSIONS,
    ITEMS,
    STAT_MEASURES,
    TOPIC_FIELDS,
    TOPICS,
    Base,
)

_LOOKUP_CHUNK = 500
_WRITE_CHUNK = 2000
# Item columns an update leaves as they are.
_KEEP_ON_UPDATE = {"pk", "dataset", "item_id", "ingested_at"}
# The item columns a batch writes (the key comes from the database).
ITEM_COLUMNS: tuple[str, ...] = tuple(c.name for c in ITEMS.c if c.name != "pk")
# A topic row of a batch: its item's id (each writer finds the item's key) and the topic's place
# in the item's result, then its fields.
TOPIC_ROW: tuple[str, ...] = ("item_id", "ordinal", *TOPIC_FIELDS)


@dataclass
class BatchWrite:
    """What one batch writes: item rows (dicts of `ITEM_COLUMNS`), topic rows (tuples of
    `TOPIC_ROW`), the changes of each aggregate table, whether some went down (an update: keys
    left empty are deleted), and the filter menus' (dataset, key, value) rows."""

    items: list[dict[str, Any]]
    topics: list[tuple] = field(default_factory=list)
    aggregates: list[tuple[Any, Rollup]] = field(default_factory=list)
    removed: bool = False
    menu: list[dict[str, Any]] = field(default_factory=list)


def upsert(
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


def one_of(column: ColumnElement, values: Sequence[str], dialect: str) -> ColumnElement:
    """`column IN values` with the values as one parameter, however many there are (a batch's
    ids): PostgreSQL `= ANY(array)`, SQLite the rows of `json_each` over a JSON array (a plain
    IN list elsewhere)."""
    if dialect == "postgresql":
        return column == any_(literal(list(values), ARRAY(String)))
    if dialect == "sqlite":
        array = func.json_each(literal(_encode_json(list(values))))
        return column.in_(select(literal_column("value")).select_from(array))
    return column.in_(list(values))


def _chunks(values: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# The store's own tables (the statistics refresh touches no other).
STORE_TABLES = frozenset(Base.metadata.tables)
# A table is analysed again once it grew by this share (and by at least this many 8 kB pages).
# Not autovacuum's 10%: the planner scales a table's row count by its current size itself, so
# only the distributions age, and each ANALYZE (a 30,000-row sample sorted per column) runs inside
# the ingest's transaction: in 100 batches of steady growth, 10% means 29 per table, 50% 10.
STALE_SHARE = 0.5
STALE_MIN_PAGES = 16


class _CoreWriter:
    """Writes through SQLAlchemy Core statements (SQLite: executemany is fast there)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def refresh_statistics(self) -> list[str]:
        """Bring the planner's statistics up to date where a table changed a lot (PostgreSQL;
        nothing elsewhere); returns the tables analysed."""
        return []

    def old_items(self, dataset: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        c = ITEMS.c
        found = []
        for part in _chunks(ids, _LOOKUP_CHUNK):
            query = select(*(c[k] for k in AGGREGATE_INPUTS)).where(
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
        stmt = upsert(
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

    def write_batch(self, batch: BatchWrite) -> None:
        """Write `batch`: its items (inserted, or updated in place), their topics (an updated
        item's old ones are already deleted), the aggregates' changes and the menu values; call
        `finish` before the transaction ends."""
        pks = self.upsert_items(batch.items)
        self.insert_topics(pks, batch.topics)
        for table, rollup in batch.aggregates:
            self.add_to(table, rollup)
        if batch.removed:
            # Keys that an update emptied (an item that moved to another day or sentiment).
            for table, rollup in batch.aggregates:
                self.delete_empty(table, emptied(rollup))
        self.insert_missing(DIMENSIONS, batch.menu)

    def finish(self) -> None:
        """What `write_batch` leaves to the end of the batch (nothing here; `_SqliteWriter`)."""

    def insert_topics(self, pks: dict[str, int], topics: list[tuple]) -> None:
        """Insert `TOPIC_ROW`s, their items' keys by id in `pks`."""
        fields = TOPIC_ROW[1:]
        rows = [{"item_pk": pks[r[0]], **dict(zip(fields, r[1:], strict=True))} for r in topics]
        self.insert(TOPICS, rows)

    def add_to(self, table, rollup: Rollup) -> None:
        """Add the changes `rollup` to the aggregate `table`."""
        keys = list(table.primary_key.columns.keys())
        stmt = upsert(self.connection, table, keys, STAT_MEASURES, add=True)
        columns = aggregate_columns(table)
        rows = rollup_rows(rollup)
        for part in _chunks(rows, _WRITE_CHUNK):
            self.connection.execute(stmt, [dict(zip(columns, r, strict=True)) for r in part])

    def insert_missing(self, table, rows: list[dict[str, Any]]) -> None:
        keys = list(table.primary_key.columns.keys())
        stmt = upsert(self.connection, table, keys, (), add=False)
        for part in _chunks(rows, _WRITE_CHUNK):
            self.connection.execute(stmt, list(part))

    def delete_empty(self, table, keys: list[tuple]) -> None:
        columns = list(table.primary_key.columns)
        for part in _chunks(keys, _LOOKUP_CHUNK):
            self.connection.execute(
                delete(table).where(tuple_(*columns).in_(list(part)), table.c.n <= 0)
            )


# One encoder for every JSON cell (`json.dumps` with options builds a new one per call).
_encode_json = json.JSONEncoder(ensure_ascii=False).encode
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _sqlite_datetime(v: dt.datetime | None) -> str | None:
    if v is None:
        return None
    # isoformat is the same text as strftime and quicker; strftime keeps a zone out of it.
    return v.isoformat(" ", "microseconds") if v.tzinfo is None else v.strftime(_SQLITE_DATETIME)


def _sqlite_converter(column) -> Any:
    # What SQLAlchemy's SQLite types store: ISO dates, "YYYY-MM-DD HH:MM:SS.ffffff", JSON text.
    kind = type(column.type).__name__
    if kind == "DateTime":
        return _sqlite_datetime
    if kind == "Date":
        return lambda v: v.isoformat() if isinstance(v, dt.date) else v
    if kind == "JSON":
        return lambda v: None if v is None else _encode_json(v)
    return None


def aggregate_columns(table) -> list[str]:
    """An aggregate table's columns in the order of the rows `add_to` takes: its key, then the
    measures."""
    return [*table.primary_key.columns.keys(), *STAT_MEASURES]


def _cells(rows: list[dict[str, Any]] | list[tuple], columns: Sequence[str]) -> list[list]:
    """The rows' values, column by column (one list per column); rows are dicts, or tuples in
    `columns` order."""
    if rows and not isinstance(rows[0], dict):
        return [list(values) for values in zip(*rows, strict=True)]
    get = itemgetter(*columns)
    if len(columns) == 1:
        return [[get(r) for r in rows]]
    return [list(values) for values in zip(*map(get, rows), strict=True)]


# The search (migration 0003) and dimension index (0007) rows of the items above a key, written
# once per batch (0009 dropped their per-row insert triggers; updates and deletes keep theirs).
_SQLITE_NEW_ITEM_INDEXES = (
    f"INSERT INTO feedback_items_fts (rowid, text) SELECT pk, text FROM {ITEMS.name} WHERE pk > ?",
    "INSERT INTO item_dimensions (key, value, item_pk) SELECT j.key, j.value, i.pk "
    f"FROM {ITEMS.name} AS i, json_each(i.dimensions) AS j WHERE i.pk > ? AND j.type = 'text'",
)


class _SqliteWriter(_CoreWriter):
    """Writes through the driver's executemany with plain tuples, skipping SQLAlchemy's
    per-row parameter processing (most of the time of a Core executemany)."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self._new_above: int | None = None  # the largest item key before this batch's items

    def finish(self) -> None:
        """The search (FTS5) and dimension index rows of the items stored since the writer
        was made, each index in one statement, which SQLite runs without Python's lock."""
        if self._new_above is not None:
            for statement in _SQLITE_NEW_ITEM_INDEXES:
                self.connection.exec_driver_sql(statement, (self._new_above,))
            self._new_above = None

    def _many(self, table, sql: str, columns: Sequence[str], rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        cells = _cells(rows, columns)
        for i, c in enumerate(columns):
            convert = _sqlite_converter(table.c[c])
            if convert is None:
                continue
            distinct = set(cells[i]) if isinstance(table.c[c].type, Date | DateTime) else ()
            if 0 < len(distinct) <= len(cells[i]) // 2:
                # A few days, one ingest time per batch: each value converted once.
                text = {v: convert(v) for v in distinct}
                cells[i] = [text[v] for v in cells[i]]
            else:
                cells[i] = list(map(convert, cells[i]))
        self.connection.exec_driver_sql(sql, list(zip(*cells, strict=True)))

    def _insert_sql(self, table, columns: Sequence[str], conflict: str = "") -> str:
        marks = ", ".join("?" for _ in columns)
        return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks}) {conflict}"

    def upsert_items(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        if not rows:
            return {}
        columns = [c.name for c in ITEMS.c if c.name != "pk"]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in _KEEP_ON_UPDATE)
        conflict = f"ON CONFLICT (dataset, item_id) DO UPDATE SET {updates}"
        # New items take keys above the largest (an INTEGER PRIMARY KEY without AUTOINCREMENT).
        last = self.connection.exec_driver_sql(
            f"SELECT coalesce(max(pk), 0) FROM {ITEMS.name}"
        ).scalar_one()
        self._many(ITEMS, self._insert_sql(ITEMS, columns, conflict), columns, rows)
        # Their search and dimension index rows: `finish`.
        self._new_above = last if self._new_above is None else self._new_above
        # Their keys in one statement (the ids as one JSON array).
        found = self.connection.exec_driver_sql(
            f"SELECT item_id, pk FROM {ITEMS.name} WHERE dataset = ? AND item_id IN "
            "(SELECT value FROM json_each(?))",
            (rows[0]["dataset"], _encode_json([r["item_id"] for r in rows])),
        )
        return dict(found.fetchall())

    def old_items(self, dataset: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        c = ITEMS.c
        query = select(*(c[k] for k in AGGREGATE_INPUTS)).where(
            c.dataset == dataset, one_of(c.item_id, ids, "sqlite")
        )
        return [dict(r) for r in self.connection.execute(query).mappings()]

    def insert(self, table, rows: list[dict[str, Any]]) -> None:
        if rows:
            columns = list(rows[0])
            self._many(table, self._insert_sql(table, columns), columns, rows)

    def insert_topics(self, pks: dict[str, int], topics: list[tuple]) -> None:
        if topics:
            columns = ("item_pk", *TOPIC_ROW[1:])
            rows = [(pks[r[0]], *r[1:]) for r in topics]
            self._many(TOPICS, self._insert_sql(TOPICS, columns), columns, rows)

    def add_to(self, table, rollup: Rollup) -> None:
        # The rows in the driver's types at once: a key's dates converted once per day.
        keys = list(table.primary_key.columns)
        formats = {i: c for i, c in enumerate(map(_sqlite_converter, keys)) if c is not None}
        rows = rollup_rows(rollup, formats)
        if rows:
            columns = aggregate_columns(table)
            names = ", ".join(k.name for k in keys)
            sets = ", ".join(f"{m} = {table.name}.{m} + excluded.{m}" for m in STAT_MEASURES)
            conflict = f"ON CONFLICT ({names}) DO UPDATE SET {sets}"
            self.connection.exec_driver_sql(self._insert_sql(table, columns, conflict), rows)

    def insert_missing(self, table, rows: list[dict[str, Any]]) -> None:
        if rows:
            columns = list(rows[0])
            keys = ", ".join(table.primary_key.columns.keys())
            sql = self._insert_sql(table, columns, f"ON CONFLICT ({keys}) DO NOTHING")
            self._many(table, sql, columns, rows)


# PostgreSQL's binary COPY names of the store's column types (`_copy_types`).
_PG_COPY_TYPES = {
    "VARCHAR": "text",
    "TEXT": "text",
    "BIGINT": "int8",
    "INTEGER": "int4",
    "FLOAT": "float8",
    "DOUBLE PRECISION": "float8",
    "BOOLEAN": "bool",
    "DATE": "date",
    "TIMESTAMP WITHOUT TIME ZONE": "timestamp",
    "JSON": "json",
    "JSONB": "jsonb",
}


@functools.cache
def _copy_types(table, columns: tuple[str, ...]) -> list[str]:
    """The binary COPY types of `columns` of `table` (as PostgreSQL stores them)."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    names = [table.c[c].type.compile(dialect=dialect).split("(")[0] for c in columns]
    return [_PG_COPY_TYPES[name] for name in names]


@dataclass
class _Stage:
    """A temporary staging table (kept by the session, emptied at each commit) that a batch's
    rows of `table` are copied into: its name says its columns, so that a session that outlives a
    migration never copies into an old layout."""

    table: Any
    columns: tuple[str, ...]
    source: str  # the SELECT ... WITH NO DATA it is created from
    types: list[str]

    @property
    def name(self) -> str:
        if not self.source:  # the table itself
            return self.table.name
        digest = hashlib.sha1(self.source.encode()).hexdigest()[:10]
        return f"_cxnlp_{self.table.name}_{digest}"

    def prepare(self) -> str:
        """Create it where the session has none; empty it (a batch before, in this
        transaction)."""
        return (
            f"CREATE TEMP TABLE IF NOT EXISTS {self.name} ON COMMIT DELETE ROWS AS "
            f"{self.source} WITH NO DATA; DELETE FROM {self.name}"
        )


def _values(rows: list[dict[str, Any]], columns: Sequence[str]) -> Iterator[tuple]:
    """The rows' values of `columns`, in that order."""
    get = itemgetter(*columns)
    return map(get, rows) if len(columns) > 1 else ((get(r),) for r in rows)


def _stage_of(table, columns: Sequence[str]) -> _Stage:
    columns = tuple(columns)
    source = f"SELECT {', '.join(columns)} FROM {table.name}"
    return _Stage(table, columns, source, _copy_types(table, columns))


# The topics' stage: the item's id in place of its key (`TOPIC_ROW`).
_TOPIC_STAGE = _Stage(
    TOPICS,
    TOPIC_ROW,
    f"SELECT i.item_id, {', '.join(f't.{c}' for c in TOPIC_ROW[1:])} "
    f"FROM {ITEMS.name} AS i, {TOPICS.name} AS t",
    [*_copy_types(ITEMS, ("item_id",)), *_copy_types(TOPICS, TOPIC_ROW[1:])],
)


class _PostgresWriter(_CoreWriter):
    """Writes through psycopg's binary COPY into staging tables, then one statement that merges
    every table of the batch (see the module's docstring)."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.raw = connection.connection.dbapi_connection

    def refresh_statistics(self) -> list[str]:
        """ANALYZE each store table that grew by more than `STALE_SHARE` (and `STALE_MIN_PAGES`)
        since its last analysis, as autovacuum would (less often): a server with autovacuum off
        (or behind a bulk load) otherwise plans lookups into a table it still believes empty, and
        the case-item check of a 1M-item ingest fell to about 900 items/s. Growth is read from the
        table's size on disk, which counts this transaction's own rows and never lags."""
        with self.raw.cursor() as cur:
            cur.execute(
                "SELECT relname, relpages, pg_relation_size(oid) / "
                "current_setting('block_size')::int FROM pg_class "
                "WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
            )
            stale = [
                name
                for name, analysed, pages in cur.fetchall()
                if name in STORE_TABLES
                and pages > max(STALE_MIN_PAGES, (1 + STALE_SHARE) * max(analysed, 0))
            ]
            for name in stale:
                cur.execute(f'ANALYZE "{name}"')
        return stale

    def old_items(self, dataset: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        with self.raw.cursor() as cur:
            cur.execute(
                f"SELECT {', '.join(AGGREGATE_INPUTS)} FROM {ITEMS.name} "
                "WHERE dataset = %s AND item_id = ANY(%s)",
                (dataset, list(ids)),
            )
            return [dict(zip(AGGREGATE_INPUTS, r, strict=True)) for r in cur.fetchall()]

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

    def _cursor(self):
        cur = self.raw.cursor()
        set_json_dumps(_encode_json, cur)  # JSON text as the other databases store it
        return cur

    def _copy(self, cur, stage: _Stage, rows: Iterable[tuple]) -> None:
        columns = ", ".join(stage.columns)
        with cur.copy(f"COPY {stage.name} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(stage.types)
            for row in rows:
                copy.write_row(row)

    def write_batch(self, batch: BatchWrite) -> None:
        """Every table of `batch` staged by binary COPY (the staging tables made ready in one
        round trip), then merged by one statement: the items' upsert returns their keys, which
        the topics take (an updated item's old topics are already deleted); each aggregate table
        gets its changes in its key's order (index pages in order, not at random); the menu
        values missing are added. Keys that an update left empty are deleted by a second
        statement (after the first's changes)."""
        staged: list[tuple[_Stage, Iterable[tuple]]] = []
        parts: list[str] = []
        if batch.items:
            stage = _stage_of(ITEMS, ITEM_COLUMNS)
            staged.append((stage, _values(batch.items, ITEM_COLUMNS)))
            cols = ", ".join(ITEM_COLUMNS)
            updates = ", ".join(
                f"{c} = EXCLUDED.{c}" for c in ITEM_COLUMNS if c not in _KEEP_ON_UPDATE
            )
            parts.append(
                f"new_items AS (INSERT INTO {ITEMS.name} ({cols}) SELECT {cols} FROM {stage.name} "
                f"ON CONFLICT (dataset, item_id) DO UPDATE SET {updates} RETURNING item_id, pk)"
            )
            if batch.topics:
                staged.append((_TOPIC_STAGE, batch.topics))
                fields = ", ".join(TOPIC_ROW[1:])
                parts.append(
                    f"new_topics AS (INSERT INTO {TOPICS.name} (item_pk, {fields}) "
                    f"SELECT i.pk, {', '.join(f's.{c}' for c in TOPIC_ROW[1:])} "
                    f"FROM {_TOPIC_STAGE.name} AS s JOIN new_items AS i USING (item_id))"
                )
        deletes: list[str] = []
        for n, (table, rollup) in enumerate(batch.aggregates):
            rows = rollup_rows(rollup)
            if not rows:
                continue
            stage = _stage_of(table, aggregate_columns(table))
            staged.append((stage, rows))
            keys = ", ".join(table.primary_key.columns.keys())
            cols = ", ".join(stage.columns)
            sets = ", ".join(f"{m} = {table.name}.{m} + EXCLUDED.{m}" for m in STAT_MEASURES)
            parts.append(
                f"add_{n} AS (INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage.name} "
                f"ORDER BY {keys} ON CONFLICT ({keys}) DO UPDATE SET {sets})"
            )
            names = [c.name for c in table.primary_key.columns]
            match = " AND ".join(f"t.{k} = s.{k}" for k in names)
            deletes.append(
                f"empty_{n} AS (DELETE FROM {table.name} AS t USING {stage.name} AS s "
                f"WHERE {match} AND s.n < 0 AND t.n <= 0)"
            )
        if batch.menu:
            columns = tuple(batch.menu[0])
            stage = _stage_of(DIMENSIONS, columns)
            staged.append((stage, _values(batch.menu, columns)))
            cols = ", ".join(columns)
            keys = ", ".join(DIMENSIONS.primary_key.columns.keys())
            parts.append(
                f"menu AS (INSERT INTO {DIMENSIONS.name} ({cols}) SELECT {cols} FROM "
                f"{stage.name} ON CONFLICT ({keys}) DO NOTHING)"
            )
        if not parts:
            return
        with self._cursor() as cur:
            # Without "already exists, skipping" notices for the session's staging tables.
            ready = "; ".join(stage.prepare() for stage, _ in staged)
            cur.execute(f"SET LOCAL client_min_messages = warning; {ready}")
            for stage, rows in staged:
                self._copy(cur, stage, rows)
            cur.execute(f"WITH {', '.join(parts)} SELECT 1")
            if batch.removed and deletes:
                cur.execute(f"WITH {', '.join(deletes)} SELECT 1")

    def insert(self, table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns = tuple(rows[0])
        with self._cursor() as cur:
            stage = _Stage(table, columns, "", _copy_types(table, columns))
            self._copy(cur, stage, _values(rows, columns))


def writer_for(connection: Connection) -> _CoreWriter:
    """The fastest writer for the connection's database."""
    writers = {"postgresql": _PostgresWriter, "sqlite": _SqliteWriter}
    return writers.get(connection.dialect.name, _CoreWriter)(connection)
