"""invoices.order_id indexed: the support tools list an order's invoices (issue 19)"""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_index("ix_invoices_order_id", "invoices", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_invoices_order_id", table_name="invoices")
