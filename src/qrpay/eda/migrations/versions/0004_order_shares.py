"""order_shares and order_share_items: several guests paying one bill (issue 12)"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "order_shares",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("tip", sa.String(32), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_shares"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_order_shares_order_id"),
    )
    op.create_index("ix_order_shares_order_id", "order_shares", ["order_id"])
    # An item is reserved by at most one share: the primary key, not the code, says so.
    op.create_table(
        "order_share_items",
        sa.Column("order_id", sa.String(32), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("share_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "item", name="pk_order_share_items"),
        sa.ForeignKeyConstraint(
            ["share_id"], ["order_shares.id"], name="fk_order_share_items_share_id"
        ),
    )


def downgrade() -> None:
    op.drop_table("order_share_items")
    op.drop_index("ix_order_shares_order_id", table_name="order_shares")
    op.drop_table("order_shares")
