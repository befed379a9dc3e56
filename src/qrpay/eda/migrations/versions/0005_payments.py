"""payments and payment_items: one payment model (issue 18)

Every payment is a share of the bill; paying the whole bill is the share of everything left.
The split bill's shares become payments as they are (their invoice is their own id); a
whole-bill payment under way or paid (orders.payment_id) becomes the payment of the whole
bill, its invoice keeping the order's id, so its queued callbacks still find it. Then the
order keeps no payment of its own: orders.payment_id and payment_phase go.
"""

from types import ModuleType

import sqlalchemy as sa
from alembic import context, op

revision = "0005"
down_revision = "0004"

# A whole-bill payment's state, from its order's status and phase.
_WHOLE_BILL_STATE = """CASE
    WHEN o.status = 'PAYED' THEN 'paid'
    WHEN o.payment_phase = 'CLEARING' THEN 'clearing'
    WHEN o.payment_phase = 'ROLLING_BACK' THEN 'rolling_back'
    ELSE 'holding' END"""


def _revision_0004() -> ModuleType:
    """Revision 0004 (loaded by alembic), which made the shares' tables: this revision drops
    them with 0004's downgrade, and its own downgrade makes them again with 0004's upgrade."""
    return context.script.get_revision("0004").module


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("invoice_id", sa.String(128), nullable=False),
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("tip", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(128), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("paid_seq", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payments"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_payments_order_id_orders"),
        sa.UniqueConstraint("order_id", "token", name="uq_payments_order_id_token"),
    )
    op.create_index("ix_payments_order_id", "payments", ["order_id"])
    op.create_index("ix_payments_state_updated_at", "payments", ["state", "updated_at", "id"])
    op.create_table(
        "payment_items",
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "item", name="pk_payment_items"),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name="fk_payment_items_payment_id_payments"
        ),
    )
    # The shares, each its own invoice; paid ones numbered in the order they were paid (the
    # cashback cap was shared in that order, by their last change).
    op.execute(
        """INSERT INTO payments (id, order_id, invoice_id, amount, tip, currency, items, state,
            version, token, request_hash, paid_seq, created_at, updated_at)
        SELECT s.id, s.order_id, s.id, s.amount, s.tip, o.currency, s.items, s.state, 1,
            NULL, NULL,
            CASE WHEN s.state = 'paid' THEN ROW_NUMBER() OVER (
                PARTITION BY s.order_id, s.state = 'paid' ORDER BY s.updated_at, s.id)
            END,
            s.created_at, s.updated_at
        FROM order_shares s JOIN orders o ON o.id = s.order_id"""
    )
    op.execute(
        "INSERT INTO payment_items (order_id, item, payment_id) "
        "SELECT order_id, item, share_id FROM order_share_items"
    )
    # Whole-bill payments under way or paid: the share of everything, invoiced on the order.
    op.execute(
        f"""INSERT INTO payments (id, order_id, invoice_id, amount, tip, currency, items, state,
            version, token, request_hash, paid_seq, created_at, updated_at)
        SELECT o.payment_id, o.id, o.id, o.amount, '0', o.currency, '[]',
            {_WHOLE_BILL_STATE}, 1, NULL, NULL,
            CASE WHEN o.status = 'PAYED' THEN 1 END, o.updated_at, o.updated_at
        FROM orders o
        WHERE o.payment_id IS NOT NULL
            AND o.status IN ('PAYMENT_IN_PROGRESS', 'PAYED')
            AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = o.payment_id)"""  # noqa: S608 - constants only
    )
    _revision_0004().downgrade()
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("payment_phase")
        batch.drop_column("payment_id")


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("payment_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("payment_phase", sa.String(16), nullable=True))
    # The shares' tables come back as revision 0004 made them.
    _revision_0004().upgrade()
    # A whole bill's payment goes back onto its order; the rest are shares again.
    op.execute(
        """UPDATE orders SET payment_id = (SELECT p.id FROM payments p
            WHERE p.invoice_id = orders.id AND p.state != 'released'),
            payment_phase = CASE WHEN status = 'PAYMENT_IN_PROGRESS' THEN 'HOLDING' END"""
    )
    op.execute(
        """INSERT INTO order_shares (id, order_id, amount, tip, items, state, created_at,
            updated_at)
        SELECT id, order_id, amount, tip, items, state, created_at, updated_at FROM payments
        WHERE invoice_id != order_id"""
    )
    op.execute(
        """INSERT INTO order_share_items (order_id, item, share_id)
        SELECT i.order_id, i.item, i.payment_id FROM payment_items i
        JOIN payments p ON p.id = i.payment_id WHERE p.invoice_id != p.order_id"""
    )
    op.drop_table("payment_items")
    op.drop_index("ix_payments_state_updated_at", table_name="payments")
    op.drop_index("ix_payments_order_id", table_name="payments")
    op.drop_table("payments")
