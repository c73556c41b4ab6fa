"""Where the feedback store lives and how it is opened: a SQLite file by default (nothing to
install or start), PostgreSQL (or any SQLAlchemy URL) from `CXNLP_DATABASE_URL`; the schema is
brought to the latest Alembic migration when the store is opened.

>>> store = open_store("sqlite://")  # in memory
>>> store.dialect
'sqlite'
>>> store.close()
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

logger = logging.getLogger(__name__)

URL_ENV = "CXNLP_DATABASE_URL"
DEFAULT_SQLITE = "cxnlp-feedback.sqlite"
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "cxnlp_feedback_version"
# SQLite's page cache per connection (its default is 2 MiB): an ingest updates the item indexes
# and the aggregate tables at scattered pages; upserts into a 200,000-row aggregate table took
# 45% less CPU with 64 MiB (allocated as pages are read, not up front).
SQLITE_CACHE_KIB = 65_536
# Any fixed number: the seed of the PostgreSQL advisory lock that serialises migrations and
# ingests of one store (a store is a schema: the lock's key is this seed's hash of its name).
_PG_LOCK = 0x63786E6C70


def resolve_url(url: str | None = None) -> str:
    """`url`, else `$CXNLP_DATABASE_URL`, else a SQLite file `cxnlp-feedback.sqlite` in the current
    directory. `postgresql://` URLs are given the psycopg (3) driver."""
    url = url or os.environ.get(URL_ENV) or f"sqlite:///{DEFAULT_SQLITE}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str | None = None) -> Engine:
    """An engine for the store: SQLite in WAL mode with foreign keys on (so that deleting an item
    deletes its topics), a page cache of `SQLITE_CACHE_KIB` per connection, waiting up to 30 s
    for a writer; PostgreSQL with pre-ping."""
    resolved = make_url(resolve_url(url))
    if resolved.get_backend_name() == "sqlite":
        database = resolved.database or ""
        memory = database in ("", ":memory:")
        if not memory:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            resolved,
            connect_args={"check_same_thread": False, "timeout": 30},
            # An in-memory database exists once per connection: share one.
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:
            # pysqlite's own transaction handling would defer BEGIN past the first SELECT; the
            # listeners below make every transaction BEGIN IMMEDIATE, so that two ingests never
            # read the same old rows.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(resolved, pool_pre_ping=True)


def lock_for_writing(connection: Connection) -> None:
    """Serialise writers of this store for the rest of this transaction (PostgreSQL: an advisory
    lock keyed by the schema the store's tables are in, so that stores in other schemas of the
    database do not wait; SQLite's BEGIN IMMEDIATE already holds the database's write lock)."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(current_schema(), :k))"),
            {"k": _PG_LOCK},
        )


@contextlib.contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    """A lock file beside a SQLite database, so that several workers starting at once do not
    run the migrations twice."""
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:"):
        yield
        return
    with open(f"{database}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the store's Alembic migrations up to `revision` (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _file_lock(engine), engine.begin() as connection:
        lock_for_writing(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revision() -> str:
    """The latest migration this version of cxnlp brings."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None before the first."""
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        revision = context.get_current_revision()
        connection.rollback()
        return revision


class FeedbackStore:
    """An open store: the engine, and what kind of database it is. Use as a context manager or
    call `close()`."""

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self.url = resolve_url(url)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        if migrate:
            upgrade(self.engine)

    def describe(self) -> str:
        """The URL without its password."""
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(url: str | None = None, *, migrate: bool = True) -> FeedbackStore:
    """Open the store at `url` (see `resolve_url`), migrating it to the latest schema."""
    store = FeedbackStore(url, migrate=migrate)
    logger.info("feedback store %s (%s)", store.describe(), store.dialect)
    return store


def upgrade_url(url: str | None = None, only_report: bool = False) -> str:
    """Migrate the store at `url` (unless `only_report`) and say where it is and at which
    migration."""
    engine = make_engine(url)
    try:
        if not only_report:
            upgrade(engine)
        revision = current_revision(engine) or "(empty: run `cxnlp db upgrade`)"
        where = make_url(resolve_url(url)).render_as_string(hide_password=True)
        return f"{where}: schema at migration {revision}"
    finally:
        engine.dispose()
