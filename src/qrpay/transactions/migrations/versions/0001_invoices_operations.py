"""invoices and operations (frozen: the tables as first created; later changes are later revisions)"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("callback_queue", sa.String(64), nullable=False),
        sa.Column("callback_task", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", name="pk_invoices"),
    )
    op.create_table(
        "operations",
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("operation_id", sa.String(160), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("target", sa.String(160), nullable=True),
        sa.Column("payment_method_id", sa.String(64), nullable=True),
        sa.Column("token", sa.String(256), nullable=True),
        sa.Column("reference", sa.String(128), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("callback_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("invoice_id", "operation_id", name="pk_operations"),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.invoice_id"], name="fk_operations_invoice_id_invoices"
        ),
    )
    op.create_index("ix_operations_status_claimed_until", "operations", ["status", "claimed_until"])
    op.create_index(
        "ix_operations_callback_sent_at_status", "operations", ["callback_sent_at", "status"]
    )
    op.create_index(
        "ix_operations_kind_status_finished_at", "operations", ["kind", "status", "finished_at"]
    )


def downgrade() -> None:
    op.drop_table("operations")
    op.drop_table("invoices")
