"""Revision 0001 (orders): the tables as declared in repository.py (``initial_revision``)."""

from qrpay.eda.repository import orders
from qrpay.kernel.migrations import initial_revision

revision = "0001"
down_revision = None

upgrade, downgrade = initial_revision("eeadcc563aee542a", orders)
