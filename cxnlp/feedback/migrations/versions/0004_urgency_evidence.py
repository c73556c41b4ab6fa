"""The rest of the API's result: each item's urgency evidence (its score and level came with
0002) and each topic's place in the item's result, so that a stored item reads back as the API
returned it.

Items stored before keep NULL in both (their evidence was not kept; their topics read back by
score, then name).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feedback_items", sa.Column("urgency_evidence", sa.JSON(), nullable=True))
    op.add_column("item_topics", sa.Column("ordinal", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of feedback_items would drop
    # the search triggers of 0003 with the old table.
    op.drop_column("item_topics", "ordinal")
    op.drop_column("feedback_items", "urgency_evidence")
