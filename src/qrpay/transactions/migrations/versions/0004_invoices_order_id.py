"""invoices.order_id indexed: the support tools list an order's invoices (issue 19)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-20
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_invoices_order_id", "invoices", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_invoices_order_id", table_name="invoices")
