"""Every failure the simulator can meet ends as one line for the operator, never a traceback."""

from __future__ import annotations

EXIT_PAYED = 0
EXIT_NOT_PAYED = 1
EXIT_ERROR = 2


class PosSimError(Exception):
    """A failure that has already been put into words for the operator."""

    def __init__(self, message: str, *, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def line(self) -> str:
        return error_line(self.message)


def error_line(message: str) -> str:
    # Terminal and CI logs both stay readable only if the error is a single line.
    flat = " ".join(message.split())
    return flat if flat.startswith("error: ") else f"error: {flat}"
