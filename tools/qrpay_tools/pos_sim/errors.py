"""The POS simulator's failures: one line for the operator, never a traceback."""

from __future__ import annotations

from qrpay_tools.errors import EXIT_ERROR, EXIT_NOT_PAYED, EXIT_PAYED, ToolError, error_line

__all__ = ["EXIT_ERROR", "EXIT_NOT_PAYED", "EXIT_PAYED", "PosSimError", "error_line"]


class PosSimError(ToolError):
    """A failure of ``qrpay-tools pos-sim``."""
