"""Exit codes and the one error type of ``qrpay guest``: every failure is one line, never a traceback."""

from __future__ import annotations

from qrpay.pos_sim.errors import error_line

EXIT_PAYED = 0
# Not paid: the card was declined, the order is closed or already paid, the bill changed.
EXIT_NOT_PAYED = 1
# Could not tell: bad link, a service down or answering nonsense, no final status in time.
EXIT_ERROR = 2


class GuestError(Exception):
    """A failure already put into words for the guest."""

    def __init__(self, message: str, *, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def line(self) -> str:
        return error_line(self.message)
