"""Locks on a database: our run lock (one run at a time), and DuckDB's file lock, waited out."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import stat
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Optional, TypeVar

logger = logging.getLogger("workspace_images")

T = TypeVar("T")

LOCK_SUFFIX = ".lock"
"""The run lock sits beside the database: `images.duckdb` -> `images.duckdb.lock`."""

_HOLDER_RE = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


class LockHeld(Exception):
    """Another run holds this database's run lock (exit 4); the message names it."""


class LockUnsafe(Exception):
    """`<db>.lock` is a symbolic link, or a file with other names: taking it would truncate a
    file that is not ours; or the database has other names, each of which would have a lock of
    its own. Refused (exit 2)."""


class DatabaseBusy(Exception):
    """Another program kept the DuckDB file locked for longer than we wait (exit 3)."""


def lock_path(db_path: Path) -> Path:
    """Where the run lock of `db_path` lives."""
    return db_path.with_name(db_path.name + LOCK_SUFFIX)


class RunLock:
    """An exclusive, non-blocking `flock` on `<db>.lock`, held for a whole run.

    The kernel drops the lock when the process ends, however it ends (kill -9
    included), so a crashed run never blocks the next one. The file keeps the
    holder's PID and start time for the message a second run prints.
    """

    def __init__(self, db_path: Path, what: str = "run") -> None:
        self.anchor = db_path
        self.path = lock_path(db_path.resolve())
        self.what = what
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        """Take the lock or raise LockHeld naming its holder.

        The lock file is never followed through a symbolic link (O_NOFOLLOW) and must be a
        plain file with no other name, since taking it truncates it: in a shared folder a link
        named `<db>.lock` would otherwise make the run wipe any file its user can write.

        A database file with several names (hard links) is refused too: each name would have a
        lock of its own (and DuckDB a WAL of its own), so two runs could write it at once.

        Raises:
            LockHeld: another run holds it.
            LockUnsafe: it is a symbolic link, not a regular file, or has other names; or the
                database file has other names.
        """
        self._check_one_name()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise LockUnsafe(f"{self.path} is a symbolic link: the run lock is never taken through one "
                             "(taking it truncates the file); remove it and run again") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            os.close(fd)
            what = "not a regular file" if not stat.S_ISREG(info.st_mode) else f"a file with {info.st_nlink} names"
            raise LockUnsafe(f"{self.path} is {what}: the run lock must be a file of its own "
                             "(taking it truncates the file); remove it and run again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeld(
                f"another workspace-images {holder} holds {self.path}: nothing was done; "
                "run again when it has finished"
            ) from None
        os.ftruncate(fd, 0)
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        os.write(fd, f"{self.what} (PID {os.getpid()}, started {started})\n".encode())
        self._fd = fd
        return self

    def _check_one_name(self) -> None:
        try:
            info = os.stat(self.anchor)
        except FileNotFoundError:
            return  # a new database: one name
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            raise LockUnsafe(f"{self.anchor} is a file with {info.st_nlink} names (hard links): a database must "
                             "have one name, so that it has one run lock; remove its other names and run again")

    def release(self) -> None:
        """Drop the lock (the file stays: deleting it would race a run taking it)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "run"


def causes(error: BaseException, limit: int = 10) -> Iterator[BaseException]:
    """`error`, then what caused it (`__cause__`, else `__context__`), at most `limit` deep."""
    current: Optional[BaseException] = error
    for _ in range(limit):
        if current is None:
            return
        yield current
        current = current.__cause__ or current.__context__


def is_lock_conflict(error: BaseException) -> bool:
    """Whether `error` (or what caused it) is DuckDB refusing a file another process holds."""
    return any("Could not set lock on file" in str(cause) for cause in causes(error))


def lock_holder(error: BaseException) -> str:
    """`PID 1234 (/usr/bin/python3.11)` from DuckDB's lock error, as far as it can be told.

    Only the program's path, never its command line: that may carry another tool's secrets.
    """
    for cause in causes(error):
        match = _HOLDER_RE.search(str(cause))
        if match:
            return f"PID {match['pid']} ({match['exe']})"
    return "another program"


def wait_for_database(
    action: Callable[[], T],
    where: str,
    timeout: float,
    what: str,
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `action`; while DuckDB says another process holds the file, wait and call it again.

    A dashboard or `report` holding the file open is normal: the run waits up to
    `timeout` seconds for it to let go, then raises DatabaseBusy naming the holder.
    Other errors pass through at once. `where` names the database in the messages (`Target.label`).
    """
    deadline = clock() + timeout
    announced = False
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_lock_conflict(exc):
                raise
            holder = lock_holder(exc)
            if clock() >= deadline:
                raise DatabaseBusy(
                    f"{where} is held open by {holder} and stayed so for {timeout:g}s, so {what} "
                    "could not write it: close that program (a BI tool, `workspace-images report`, "
                    "a DuckDB shell) and run again"
                ) from None
            if not announced:
                logger.warning("%s is held open by %s; waiting up to %gs for it before %s",
                               where, holder, timeout, what)
                announced = True
            sleep(poll)
