"""operations.capture: a hold cleared in the same pass as soon as it succeeds"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column(
        "operations",
        sa.Column("capture", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("operations", "capture")
