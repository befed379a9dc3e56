"""Revision 0001 (payment_methods): the tables as declared in repository.py (``initial_revision``)."""

from qrpay.cardstorage.repository import payment_methods
from qrpay.kernel.migrations import initial_revision

revision = "0001"
down_revision = None

upgrade, downgrade = initial_revision("548284e111e6b211", payment_methods)
