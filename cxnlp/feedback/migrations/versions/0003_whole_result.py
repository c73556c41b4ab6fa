"""The whole result of an item: `mixed`, `truncated`, each topic's evidence (its urgency and
customer came with 0002, follow-up cases); text search indexes (PostgreSQL: a pg_trgm GIN index,
SQLite: an FTS5 trigram table kept by triggers).

Both search indexes answer the store's substring search (`ILIKE` / `LIKE '%q%'`) without
reading every item; where the pg_trgm extension cannot be created the search still works, by
scanning.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

logger = logging.getLogger(__name__)

_ITEM_COLUMNS = {
    "mixed": sa.Boolean,
    "truncated": sa.Boolean,
}

_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE feedback_items_fts USING fts5("
    "text, content='feedback_items', content_rowid='pk', tokenize='trigram')",
    "CREATE TRIGGER feedback_items_fts_insert AFTER INSERT ON feedback_items BEGIN "
    "INSERT INTO feedback_items_fts(rowid, text) VALUES (new.pk, new.text); END",
    "CREATE TRIGGER feedback_items_fts_delete AFTER DELETE ON feedback_items BEGIN "
    "INSERT INTO feedback_items_fts(feedback_items_fts, rowid, text) "
    "VALUES ('delete', old.pk, old.text); END",
    "CREATE TRIGGER feedback_items_fts_update AFTER UPDATE OF text ON feedback_items BEGIN "
    "INSERT INTO feedback_items_fts(feedback_items_fts, rowid, text) "
    "VALUES ('delete', old.pk, old.text); "
    "INSERT INTO feedback_items_fts(rowid, text) VALUES (new.pk, new.text); END",
    "INSERT INTO feedback_items_fts(feedback_items_fts) VALUES ('rebuild')",
)


def upgrade() -> None:
    for name, kind in _ITEM_COLUMNS.items():
        op.add_column("feedback_items", sa.Column(name, kind(), nullable=True))
    op.add_column("item_topics", sa.Column("evidence", sa.JSON(), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in _SQLITE_FTS:
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        _postgres_trigram_index(bind)


# Where pg_trgm is created when the database has none: a schema no store owns (an extension is
# per database; created in a store's own schema, it went when that schema was dropped, and with
# it the trigram indexes of every other store).
TRIGRAM_SCHEMA = "public"
# Serialises creating the extension across stores in different schemas (whose migrations do not
# wait for each other): any fixed number.
_EXTENSION_LOCK = 0x63786E6C7074


def _create_trigram_extension(bind) -> bool:
    """pg_trgm in `TRIGRAM_SCHEMA` (or, where that cannot be, the schema the store is created
    in), unless the database already has it; False where it cannot be created at all."""
    bind.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_EXTENSION_LOCK})")
    for statement in (
        f'CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA "{TRIGRAM_SCHEMA}"',
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    ):
        savepoint = bind.begin_nested()
        try:
            bind.exec_driver_sql(statement)
            savepoint.commit()
            return True
        except sa.exc.DBAPIError as exc:
            savepoint.rollback()
            error = exc
    logger.warning("pg_trgm is not available (%s): text search will scan the items", error)
    return False


def _postgres_trigram_index(bind) -> None:
    if not _create_trigram_extension(bind):
        return
    # The operator class is named with the schema the extension is in (wherever it was created).
    schema = bind.exec_driver_sql(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'"
    ).scalar_one()
    op.execute(
        "CREATE INDEX ix_feedback_items_text_trgm ON feedback_items "
        f'USING gin (text "{schema}".gin_trgm_ops)'
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS feedback_items_fts_{name}")
        op.execute("DROP TABLE IF EXISTS feedback_items_fts")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_feedback_items_text_trgm")
    with op.batch_alter_table("item_topics") as batch_op:
        batch_op.drop_column("evidence")
    with op.batch_alter_table("feedback_items") as batch_op:
        for name in reversed(_ITEM_COLUMNS):
            batch_op.drop_column(name)
