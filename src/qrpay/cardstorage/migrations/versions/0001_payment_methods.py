"""payment_methods

Revision ID: 0001
Revises:
Create Date: 2026-01-01

The tables as ``cardstorage/repository.py`` declares them (see ``initial_revision``).
"""

from qrpay.cardstorage.repository import payment_methods
from qrpay.kernel.migrations import initial_revision

revision = "0001"
down_revision = None

upgrade, downgrade = initial_revision("548284e111e6b211", payment_methods)
