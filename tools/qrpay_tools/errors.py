"""Exit codes and the one error type of the tools: every failure is one line, never a traceback."""

from __future__ import annotations

from pydantic import ValidationError

EXIT_PAYED = 0
# Not paid: declined, canceled, not found, the bill changed, or no final status in time.
EXIT_NOT_PAYED = 1
# Could not tell: bad input, a service down or answering nonsense.
EXIT_ERROR = 2

# The guest and the POS keep polling a status through a short outage (no answer at all, or a
# gateway's 502/503/504: a service restarting); this many failures in a row end the session.
MAX_POLL_FAILURES = 5


def poll_again(status: int | None, failures: int) -> bool:
    """Whether a status poll that failed, ``failures`` times in a row now, is asked again;
    ``status``: its answer's, None when none came."""
    return (status is None or status in (502, 503, 504)) and failures < MAX_POLL_FAILURES


class ToolError(Exception):
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


def first_problem(exc: ValidationError) -> str:
    """The first thing pydantic found wrong, in words: ``where: what``."""
    problem = exc.errors()[0]
    where = ".".join(str(part) for part in problem["loc"]) or "the body"
    return f"{where}: {problem['msg']}"
