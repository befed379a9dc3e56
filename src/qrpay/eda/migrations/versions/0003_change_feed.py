"""orders.change_tx: the transaction of each order's latest write, the change feed's order

Rows written before this revision get 0: they come first in the feed, in id order.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column(
        "orders", sa.Column("change_tx", sa.BigInteger(), nullable=False, server_default="0")
    )
    # The feed reads in (change_tx, id) order after a cursor.
    op.create_index("ix_orders_change_tx_id", "orders", ["change_tx", "id"])
    # One restaurant's part of it (the POS's push).
    op.create_index("ix_orders_client_id_change_tx", "orders", ["client_id", "change_tx", "id"])


def downgrade() -> None:
    op.drop_index("ix_orders_client_id_change_tx", table_name="orders")
    op.drop_index("ix_orders_change_tx_id", table_name="orders")
    op.drop_column("orders", "change_tx")
