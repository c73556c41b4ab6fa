"""Per-dimension aggregates: `daily_stats`, `daily_totals`, `daily_topic_totals` and
`daily_topic_channels` per value of each free dimension (`dim_key`, `dim_value` first, the key a
view filters on), and `dimension_keys`, which keys of a dataset have them. A view filtered on one
free dimension reads these instead of adding up the items the dimension index finds.

Filled from the stored items by `cxnlp.feedback.dimension_rollups.fill`: the same SQL measures as
a view over the items (`cxnlp.feedback.facts.item_measures`), so that the statistics are written
once; unlike the frozen table definitions here, that code is the current one.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The key columns and measures as 0001 created them (frozen here).
_KEYS = {
    "dim_key": lambda: sa.String(length=200),
    "dim_value": lambda: sa.String(length=200),
    "dataset": lambda: sa.String(length=200),
    "day": sa.Date,
    "lang": lambda: sa.String(length=16),
    "channel": lambda: sa.String(length=200),
    "sentiment": lambda: sa.String(length=16),
    "score_kind": lambda: sa.String(length=8),
    "topic": lambda: sa.String(length=100),
    "polarity": lambda: sa.String(length=16),
}
_MEASURES = {
    **dict.fromkeys(("n", "p_positive_sum", "p_neutral_sum", "p_negative_sum", "score_n"), _COUNT),
    "score_sum": sa.Float(),
    "score_sq_sum": sa.Float(),
    **dict.fromkeys(("promoters", "detractors", "satisfied"), _COUNT),
}
_TABLES = {
    "daily_dimension_stats": ("lang", "channel", "sentiment", "score_kind"),
    "daily_dimension_totals": ("sentiment", "score_kind"),
    "daily_dimension_topic_totals": ("sentiment", "score_kind", "topic", "polarity"),
    "daily_dimension_topic_channels": ("channel", "sentiment", "topic", "polarity"),
}


def upgrade() -> None:
    for name, rest in _TABLES.items():
        keys = ("dim_key", "dim_value", "dataset", "day", *rest)
        op.create_table(
            name,
            *(sa.Column(k, _KEYS[k](), nullable=False) for k in keys),
            *(sa.Column(m, kind, nullable=False) for m, kind in _MEASURES.items()),
            sa.PrimaryKeyConstraint(*keys),
            sqlite_with_rowid=False,  # one b-tree per table in SQLite (see 0009)
        )
    op.create_table(
        "dimension_keys",
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("dim_key", sa.String(length=200), nullable=False),
        sa.Column("aggregated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("dataset", "dim_key"),
    )
    from cxnlp.feedback.dimension_rollups import fill

    fill(op.get_bind())


def downgrade() -> None:
    op.drop_table("dimension_keys")
    for name in reversed(_TABLES):
        op.drop_table(name)
