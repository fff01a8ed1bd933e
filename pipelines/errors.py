"""How a run ends badly: the exit codes, the two errors, and one line of what went wrong."""

from __future__ import annotations

import duckdb
from dlt.destinations.exceptions import DatabaseException

from workspace_images.failures import first_line

from .locking import causes


EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_FAILED, EXIT_LOCKED = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Bad usage or configuration: exit 2 with this one-line message."""


class RunFailed(Exception):
    """The run itself failed (destination, load): exit 3 with this message."""


def is_database_error(exc: BaseException) -> bool:
    """Whether `exc` is the database's (DuckDB's, or one dlt's SQL client raised)."""
    return any(isinstance(cause, (duckdb.Error, DatabaseException)) for cause in causes(exc))


def reason_of(exc: BaseException) -> str:
    """What made a pipeline step fail, in one line: the database's own error when dlt has it."""
    start = exc.__cause__ or getattr(exc, "exception", None) or exc
    last = start
    for cause in causes(start):
        inner = getattr(cause, "client_exception", None)
        if isinstance(inner, BaseException):
            return first_line(inner)
        last = cause
    return first_line(last)
