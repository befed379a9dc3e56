"""Revision 0001 (invoices and operations): the tables as declared in repository.py (``initial_revision``)."""

from qrpay.kernel.migrations import initial_revision
from qrpay.transactions.repository import invoices, operations

revision = "0001"
down_revision = None

upgrade, downgrade = initial_revision("321998da9e64012b", invoices, operations)
