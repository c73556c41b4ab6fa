"""Score scales: the scale each dataset's NPS, CSAT or CES answers are on, declared once per
dataset and kind (CSAT's top two boxes are counted on it).

Datasets stored before hold scores on the kinds' usual scales (the only ones accepted then): NPS
0-10, CSAT 1-5, CES undeclared; they are recorded as such from the per-day totals.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The scales accepted before this migration (frozen here: later changes must not rewrite history).
_USUAL = {"nps": (0.0, 10.0), "csat": (1.0, 5.0), "ces": (None, None)}


def upgrade() -> None:
    op.create_table(
        "score_scales",
        sa.Column("dataset", sa.String(length=200), nullable=False),
        sa.Column("score_kind", sa.String(length=8), nullable=False),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("dataset", "score_kind"),
    )
    for kind, (low, high) in _USUAL.items():
        op.get_bind().execute(
            sa.text(
                "INSERT INTO score_scales (dataset, score_kind, low, high) "
                "SELECT DISTINCT dataset, score_kind, CAST(:low AS FLOAT), CAST(:high AS FLOAT) "
                "FROM daily_totals "
                "WHERE score_kind = :kind AND score_n > 0"
            ),
            {"kind": kind, "low": low, "high": high},
        )


def downgrade() -> None:
    op.drop_table("score_scales")
