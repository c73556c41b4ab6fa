"""SQLite ingest: the aggregate tables stored in their primary key's order (WITHOUT ROWID: an
upsert changes one b-tree instead of the table and its key's index), and a new item's search
(FTS5, 0003) and dimension index rows (`item_dimensions`, 0007) written by the ingest in one
statement per batch (`cxnlp.feedback.writers`) instead of a trigger per row: measured on 10,000-item
batches, the per-row FTS5 trigger took about a third of the item upsert, one INSERT ... SELECT a
tenth of that. The update and delete triggers stay. PostgreSQL: nothing changes.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_AGGREGATES = (
    "daily_stats",
    "daily_topic_stats",
    "daily_totals",
    "daily_topic_totals",
    "daily_topic_channels",
)
# The insert triggers as 0003 and 0007 created them (frozen here, for the downgrade).
_INSERT_TRIGGERS = {
    "feedback_items_fts_insert": (
        "CREATE TRIGGER feedback_items_fts_insert AFTER INSERT ON feedback_items BEGIN "
        "INSERT INTO feedback_items_fts(rowid, text) VALUES (new.pk, new.text); END"
    ),
    "item_dimensions_insert": (
        "CREATE TRIGGER item_dimensions_insert AFTER INSERT ON feedback_items BEGIN "
        "INSERT INTO item_dimensions (key, value, item_pk) SELECT key, value, new.pk "
        "FROM json_each(new.dimensions) WHERE type = 'text'; END"
    ),
}
_SUFFIX = " WITHOUT ROWID"


def _rebuild(name: str, clustered: bool) -> None:
    """Copy table `name` into one created WITHOUT ROWID (or, `clustered` False, with a rowid),
    with its indexes."""
    bind = op.get_bind()
    sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).scalar_one()
    indexes = (
        bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
            (name,),
        )
        .scalars()
        .all()
    )
    sql = sql.rstrip().removesuffix(_SUFFIX)
    op.execute(f"ALTER TABLE {name} RENAME TO _old_{name}")
    op.execute(sql + (_SUFFIX if clustered else ""))
    op.execute(f"INSERT INTO {name} SELECT * FROM _old_{name}")
    op.execute(f"DROP TABLE _old_{name}")
    for index in indexes:
        op.execute(index)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in _INSERT_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for name in _AGGREGATES:
        _rebuild(name, clustered=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in _AGGREGATES:
        _rebuild(name, clustered=False)
    for sql in _INSERT_TRIGGERS.values():
        op.execute(sql)
    # Items stored at 0009 without their trigger rows.
    op.execute("INSERT INTO feedback_items_fts(feedback_items_fts) VALUES ('rebuild')")
    op.execute("DELETE FROM item_dimensions")
    op.execute(
        "INSERT INTO item_dimensions (key, value, item_pk) SELECT j.key, j.value, i.pk "
        "FROM feedback_items AS i, json_each(i.dimensions) AS j WHERE j.type = 'text'"
    )
