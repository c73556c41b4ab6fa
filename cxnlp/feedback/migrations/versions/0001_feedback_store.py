"""The feedback store: items, their topics, per-day aggregates, dimension values, alerts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The per-day aggregates' key columns, and what each of them counts or sums.
_KEYS = {
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
    **dict.fromkeys(("n", "p_positive_sum", "p_neutral_sum", "p_negative_sum", "score_n"), _ID),
    "score_sum": sa.Float(),
    "score_sq_sum": sa.Float(),
    **dict.fromkeys(("promoters", "detractors", "satisfied"), _ID),
}


def _aggregate(name: str, *keys: str) -> None:
    """A per-day aggregate table: its key columns (the primary key), then the measures."""
    op.create_table(
        name,
        *[sa.Column(key, _KEYS[key](), nullable=False) for key in keys],
        *[sa.Column(measure, kind, nullable=False) for measure, kind in _MEASURES.items()],
        sa.PrimaryKeyConstraint(*keys),
    )


def upgrade() -> None:
    _aggregate("daily_stats", "dataset", "day", "lang", "channel", "sentiment", "score_kind")
    _aggregate(
        "daily_topic_stats",
        *("dataset", "day", "lang", "channel", "sentiment", "score_kind", "topic", "polarity"),
    )
    with op.batch_alter_table("daily_topic_stats", schema=None) as batch_op:
        batch_op.create_index(
            "ix_daily_topic_stats_topic", ["topic", "dataset", "day"], unique=False
        )

    _aggregate(
        "daily_topic_totals", "dataset", "day", "sentiment", "score_kind", "topic", "polarity"
    )
    _aggregate("daily_totals", "dataset", "day", "sentiment", "score_kind")
    op.create_table(
        "feedback_alerts",
        sa.Column(
            "id",
            _ID,
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("period_kind", sa.String(length=8), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("column_name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("notified_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "dataset", "period_kind", "period", "kind", "column_name", "value", name="uq_alert"
        ),
    )
    op.create_table(
        "feedback_dimensions",
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("dataset", "key", "value"),
    )
    op.create_table(
        "feedback_items",
        sa.Column(
            "pk",
            _ID,
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("lang", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=True),
        sa.Column("product", sa.String(length=200), nullable=True),
        sa.Column("dimensions", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("score_kind", sa.String(length=8), nullable=True),
        sa.Column("sentiment", sa.String(length=16), nullable=True),
        sa.Column("p_positive", sa.Float(), nullable=True),
        sa.Column("p_neutral", sa.Float(), nullable=True),
        sa.Column("p_negative", sa.Float(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("model_name", sa.String(length=200), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("ingested_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
        sa.UniqueConstraint("dataset", "item_id", name="uq_feedback_items_dataset_item"),
    )
    with op.batch_alter_table("feedback_items", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_items_created_at", ["created_at", "pk"], unique=False)
        batch_op.create_index(
            "ix_feedback_items_dataset_channel", ["dataset", "channel"], unique=False
        )
        batch_op.create_index("ix_feedback_items_dataset_day", ["dataset", "day"], unique=False)
        batch_op.create_index(
            "ix_feedback_items_dataset_sentiment", ["dataset", "sentiment"], unique=False
        )

    op.create_table(
        "item_topics",
        sa.Column("item_pk", _ID, nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("polarity", sa.String(length=16), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["item_pk"], ["feedback_items.pk"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("item_pk", "topic"),
    )
    with op.batch_alter_table("item_topics", schema=None) as batch_op:
        batch_op.create_index("ix_item_topics_topic", ["topic", "item_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("item_topics", schema=None) as batch_op:
        batch_op.drop_index("ix_item_topics_topic")

    op.drop_table("item_topics")
    with op.batch_alter_table("feedback_items", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_items_created_at")
        batch_op.drop_index("ix_feedback_items_dataset_sentiment")
        batch_op.drop_index("ix_feedback_items_dataset_day")
        batch_op.drop_index("ix_feedback_items_dataset_channel")

    op.drop_table("feedback_items")
    op.drop_table("feedback_dimensions")
    op.drop_table("feedback_alerts")
    op.drop_table("daily_totals")
    op.drop_table("daily_topic_totals")
    with op.batch_alter_table("daily_topic_stats", schema=None) as batch_op:
        batch_op.drop_index("ix_daily_topic_stats_topic")

    op.drop_table("daily_topic_stats")
    op.drop_table("daily_stats")
