"""reversals, debt_repayments and accounts: cashback given back and the debt it leaves
(issue 19)

New tables only: the accruals stay as they are. ``accounts`` holds one lock row per user
and currency, made when first needed (none for existing users).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "reversals",
        sa.Column("reversal_id", sa.String(128), nullable=False),
        sa.Column("accrual_key", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("taken", sa.String(32), nullable=False),
        sa.Column("debt", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        # At most once per reversal id: the primary key, not the code, says so.
        sa.PrimaryKeyConstraint("reversal_id", name="pk_reversals"),
        sa.ForeignKeyConstraint(
            ["accrual_key"], ["accruals.order_id"], name="fk_reversals_accrual_key_accruals"
        ),
    )
    op.create_index("ix_reversals_accrual_key", "reversals", ["accrual_key"])
    op.create_index("ix_reversals_user_id", "reversals", ["user_id"])
    op.create_table(
        "debt_repayments",
        sa.Column("accrual_key", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        # At most one repayment per accrual.
        sa.PrimaryKeyConstraint("accrual_key", name="pk_debt_repayments"),
        sa.ForeignKeyConstraint(
            ["accrual_key"],
            ["accruals.order_id"],
            name="fk_debt_repayments_accrual_key_accruals",
        ),
    )
    op.create_index("ix_debt_repayments_user_id", "debt_repayments", ["user_id"])
    op.create_table(
        "accounts",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "currency", name="pk_accounts"),
    )


def downgrade() -> None:
    op.drop_table("accounts")
    op.drop_index("ix_debt_repayments_user_id", table_name="debt_repayments")
    op.drop_table("debt_repayments")
    op.drop_index("ix_reversals_user_id", table_name="reversals")
    op.drop_index("ix_reversals_accrual_key", table_name="reversals")
    op.drop_table("reversals")
