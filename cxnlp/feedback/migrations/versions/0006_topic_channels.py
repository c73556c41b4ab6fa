"""The per-day topic aggregates by channel (`daily_topic_channels`: `daily_topic_stats` without
language and score kind), which topic x channel and the topics of one channel read: a fifth of
the rows or less. Filled from `daily_topic_stats`.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KEYS = ("dataset", "day", "channel", "sentiment", "topic", "polarity")
# The measures as 0001 created them (frozen here).
_MEASURES = {
    "n": _COUNT,
    "p_positive_sum": _COUNT,
    "p_neutral_sum": _COUNT,
    "p_negative_sum": _COUNT,
    "score_n": _COUNT,
    "score_sum": sa.Float(),
    "score_sq_sum": sa.Float(),
    "promoters": _COUNT,
    "detractors": _COUNT,
    "satisfied": _COUNT,
}


def upgrade() -> None:
    op.create_table(
        "daily_topic_channels",
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("sentiment", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("polarity", sa.String(length=16), nullable=False),
        *(sa.Column(name, kind, nullable=False) for name, kind in _MEASURES.items()),
        sa.PrimaryKeyConstraint(*_KEYS),
    )
    keys, sums = ", ".join(_KEYS), ", ".join(f"SUM({m})" for m in _MEASURES)
    op.execute(
        f"INSERT INTO daily_topic_channels ({keys}, {', '.join(_MEASURES)}) "
        f"SELECT {keys}, {sums} FROM daily_topic_stats GROUP BY {keys}"
    )


def downgrade() -> None:
    op.drop_table("daily_topic_channels")
