"""The exit codes of the client commands (the table in the package's docstring) and the
error that carries one."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_REFUSED = 4
EXIT_UNREACHABLE = 5
EXIT_FILES = 6
EXIT_INTERRUPTED = 130


class ClientError(Exception):
    """One line for stderr and the exit code that goes with it."""

    def __init__(self, exit_code: int, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
        self.http_status = http_status


def reason(exc: BaseException) -> str:
    """An exception as the end of an error line (its type when it says nothing)."""
    return str(exc) or type(exc).__name__
