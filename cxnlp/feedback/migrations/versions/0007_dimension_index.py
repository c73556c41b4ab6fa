"""An index for filters on an item's own dimensions (the export's extra columns, `dimensions`),
which scanned every item and read its JSON.

- PostgreSQL: `dimensions` becomes JSONB (the table is rewritten once) with a GIN index
  (`jsonb_path_ops`); a filter is a containment test (`dimensions @> '{"tier": "gold"}'`), which
  the index answers and whose row count the planner estimates from the column's statistics.
- SQLite (no GIN): `item_dimensions`, one (key, value, item_pk) row per text value of an item's
  `dimensions`, kept by triggers as the FTS5 search table is (migration 0003), filled here from
  the stored items; a filter joins it on its primary key.

Both stay outside the ORM (`cxnlp.feedback.models.DIMENSION_INDEX_OBJECTS`); the ingest writes
nothing of them itself.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# An item's (key, value) pairs: dimensions hold text values only (`cxnlp.feedback.records`).
_PAIRS = "SELECT key, value, {item}.pk FROM json_each({item}.dimensions) WHERE type = 'text'"
_SQLITE = (
    "CREATE TABLE item_dimensions (key TEXT NOT NULL, value TEXT NOT NULL, "
    "item_pk INTEGER NOT NULL, PRIMARY KEY (key, value, item_pk)) WITHOUT ROWID",
    "CREATE TRIGGER item_dimensions_insert AFTER INSERT ON feedback_items BEGIN "
    f"INSERT INTO item_dimensions (key, value, item_pk) {_PAIRS.format(item='new')}; END",
    # An update that leaves the dimensions as they were (a resent item) changes nothing here.
    "CREATE TRIGGER item_dimensions_update AFTER UPDATE OF dimensions ON feedback_items "
    "WHEN old.dimensions IS NOT new.dimensions BEGIN "
    f"DELETE FROM item_dimensions WHERE (key, value, item_pk) IN ({_PAIRS.format(item='old')}); "
    f"INSERT INTO item_dimensions (key, value, item_pk) {_PAIRS.format(item='new')}; END",
    "CREATE TRIGGER item_dimensions_delete AFTER DELETE ON feedback_items BEGIN "
    f"DELETE FROM item_dimensions WHERE (key, value, item_pk) IN ({_PAIRS.format(item='old')}); "
    "END",
    "INSERT INTO item_dimensions (key, value, item_pk) SELECT j.key, j.value, i.pk "
    "FROM feedback_items AS i, json_each(i.dimensions) AS j WHERE j.type = 'text'",
)
_SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS item_dimensions_insert",
    "DROP TRIGGER IF EXISTS item_dimensions_update",
    "DROP TRIGGER IF EXISTS item_dimensions_delete",
    "DROP TABLE IF EXISTS item_dimensions",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "ALTER TABLE feedback_items ALTER COLUMN dimensions TYPE jsonb USING dimensions::jsonb"
        )
        op.execute(
            "CREATE INDEX ix_feedback_items_dimensions ON feedback_items "
            "USING gin (dimensions jsonb_path_ops)"
        )
    elif dialect == "sqlite":
        for statement in _SQLITE:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_feedback_items_dimensions")
        op.execute(
            "ALTER TABLE feedback_items ALTER COLUMN dimensions TYPE json USING dimensions::json"
        )
    elif dialect == "sqlite":
        for statement in _SQLITE_DROP:
            op.execute(statement)
