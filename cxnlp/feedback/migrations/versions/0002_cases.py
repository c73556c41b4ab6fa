"""Follow-up cases: the customer and urgency of each item, cases, their items and their events.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("feedback_items") as batch:
        batch.add_column(sa.Column("customer_id", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("urgency", sa.Float(), nullable=True))
        batch.add_column(sa.Column("urgency_level", sa.String(length=8), nullable=True))
        batch.create_index(
            "ix_feedback_items_customer", ["dataset", "customer_id", "created_at"], unique=False
        )
    op.create_table(
        "follow_up_cases",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.String(length=300), nullable=False),
        sa.Column("customer_id", sa.String(length=300), nullable=True),
        sa.Column("open_key", sa.String(length=600), nullable=True),
        sa.Column("reason", sa.String(length=100), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=True),
        sa.Column("team", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("escalation_owner", sa.String(length=200), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("priority_rank", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("sentiment", sa.String(length=16), nullable=True),
        sa.Column("urgency", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("first_response_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("escalated_at", sa.DateTime(), nullable=True),
        sa.Column("root_cause", sa.String(length=200), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset", "open_key", name="uq_follow_up_cases_open"),
    )
    op.create_index(
        "ix_follow_up_cases_queue", "follow_up_cases", ["is_open", "priority_rank", "due_at"]
    )
    op.create_index("ix_follow_up_cases_customer", "follow_up_cases", ["dataset", "customer_id"])
    op.create_index("ix_follow_up_cases_team", "follow_up_cases", ["team", "status"])
    op.create_table(
        "case_items",
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.String(length=300), nullable=False),
        sa.Column("case_id", _ID, nullable=False),
        sa.Column("linked_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["follow_up_cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("dataset", "item_id"),
    )
    op.create_index("ix_case_items_case", "case_items", ["case_id"])
    op.create_table(
        "case_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("case_id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["follow_up_cases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_case_events_case", "case_events", ["case_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_case_events_case", table_name="case_events")
    op.drop_table("case_events")
    op.drop_index("ix_case_items_case", table_name="case_items")
    op.drop_table("case_items")
    op.drop_index("ix_follow_up_cases_team", table_name="follow_up_cases")
    op.drop_index("ix_follow_up_cases_customer", table_name="follow_up_cases")
    op.drop_index("ix_follow_up_cases_queue", table_name="follow_up_cases")
    op.drop_table("follow_up_cases")
    with op.batch_alter_table("feedback_items") as batch:
        batch.drop_index("ix_feedback_items_customer")
        batch.drop_column("urgency_level")
        batch.drop_column("urgency")
        batch.drop_column("customer_id")
