"""The guest CLI's failures: one line for the guest, never a traceback."""

from __future__ import annotations

from qrpay_tools.errors import EXIT_ERROR, EXIT_NOT_PAYED, EXIT_PAYED, ToolError

__all__ = ["EXIT_ERROR", "EXIT_NOT_PAYED", "EXIT_PAYED", "GuestError"]


class GuestError(ToolError):
    """A failure of ``qrpay-tools guest``."""
