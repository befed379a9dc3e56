"""orders.payment_phase: where a payment under way stands (HOLDING, CLEARING, ROLLING_BACK)"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("orders", sa.Column("payment_phase", sa.String(16), nullable=True))
    # A payment under way before this revision had only its hold: it is HOLDING.
    op.execute("UPDATE orders SET payment_phase = 'HOLDING' WHERE status = 'PAYMENT_IN_PROGRESS'")


def downgrade() -> None:
    op.drop_column("orders", "payment_phase")
