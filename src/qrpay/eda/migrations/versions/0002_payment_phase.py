"""orders.payment_phase: where a payment under way stands (HOLDING, CLEARING, ROLLING_BACK)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("payment_phase", sa.String(16), nullable=True))
    # A payment under way before this revision had only its hold: it is HOLDING.
    op.execute("UPDATE orders SET payment_phase = 'HOLDING' WHERE status = 'PAYMENT_IN_PROGRESS'")


def downgrade() -> None:
    op.drop_column("orders", "payment_phase")
