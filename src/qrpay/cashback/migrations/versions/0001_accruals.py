"""accruals

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accruals",
        # The primary key is what makes an accrual happen at most once per order.
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        # A canonical decimal string ("0.10"), never a float.
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name="pk_accruals"),
    )
    op.create_index("ix_accruals_user_id", "accruals", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_accruals_user_id", table_name="accruals")
    op.drop_table("accruals")
