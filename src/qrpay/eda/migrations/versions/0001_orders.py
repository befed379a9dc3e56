"""orders

Revision ID: 0001
Revises:
Create Date: 2026-01-01

The tables as ``eda/repository.py`` declares them (see ``initial_revision``).
"""

from qrpay.eda.repository import orders
from qrpay.kernel.migrations import initial_revision

revision = "0001"
down_revision = None

upgrade, downgrade = initial_revision("eeadcc563aee542a", orders)
