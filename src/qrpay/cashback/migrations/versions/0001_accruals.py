"""Revision 0001 (accruals): the tables as declared in repository.py (``initial_revision``)."""

from qrpay.cashback.repository import accruals
from qrpay.kernel.migrations import initial_revision

revision = "0001"
down_revision = None

upgrade, downgrade = initial_revision("7916ec8fff77b8b7", accruals)
