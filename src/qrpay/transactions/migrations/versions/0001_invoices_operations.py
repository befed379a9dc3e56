"""invoices and operations

Revision ID: 0001
Revises:
Create Date: 2026-01-01

The tables as ``transactions/repository.py`` declares them (see ``initial_revision``).
"""

from qrpay.kernel.migrations import initial_revision
from qrpay.transactions.repository import invoices, operations

revision = "0001"
down_revision = None

upgrade, downgrade = initial_revision("321998da9e64012b", invoices, operations)
