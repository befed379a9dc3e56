"""accruals

Revision ID: 0001
Revises:
Create Date: 2026-01-01

The tables as ``cashback/repository.py`` declares them (see ``initial_revision``).
"""

from qrpay.cashback.repository import accruals
from qrpay.kernel.migrations import initial_revision

revision = "0001"
down_revision = None

upgrade, downgrade = initial_revision("7916ec8fff77b8b7", accruals)
