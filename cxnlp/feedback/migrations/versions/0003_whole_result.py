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


def _postgres_trigram_index(bind) -> None:
    # The extension may live in another schema than the store's (it is per database); its
    # operator class is named with that schema.
    savepoint = bind.begin_nested()
    try:
        bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        savepoint.commit()
    except sa.exc.DBAPIError as exc:
        savepoint.rollback()
        logger.warning("pg_trgm is not available (%s): text search will scan the items", exc)
        return
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
