"""A DAG task meeting a held database: it tries again itself, sooner at first, for a few minutes.

Another run holding the database's run lock (LockHeld, the CLI's exit 4) or another program
holding the DuckDB file open for longer than `lock_timeout` (DatabaseBusy) is over in
minutes, and left nothing written that a retry would repeat. The task waits 5 s, 10 s,
20 s, then 30 s between tries, for up to LOCK_WAIT seconds, and then fails with StillHeld,
an AirflowFailException naming the holder, which Airflow does not retry.

Waiting here rather than through Airflow's retries: Airflow has one retry delay a task,
whatever failed, and the DAG keeps its retries, minutes apart, for a run that failed
(RunFailed: a destination down); a task that waits starts within seconds of the holder
letting go; and `airflow dags test` (which waits out a retry delay printing
"No tasks to run" every second) shows one try and the task's own lines.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from workspace_images.pipelines.airflow_context import AirflowFailException
from workspace_images.pipelines.locking import DatabaseBusy, LockHeld

T = TypeVar("T")

LOCK_WAIT = 300.0
"""Seconds a task keeps trying while the database is held, before it fails for good."""
FIRST_PAUSE, MAX_PAUSE = 5.0, 30.0
"""Seconds between tries: the first pause, doubled after each try up to the longest."""

logger = logging.getLogger("workspace_images")


class StillHeld(AirflowFailException):
    """The database stayed held (another run's lock, another program's file lock) through every
    try of the task's wait: Airflow fails the task without retrying; the message names the holder."""


def retry_while_held(action: Callable[[], T], wait: float = LOCK_WAIT) -> T:
    """Call `action`; while it meets a held lock or a busy file, pause and call it again.

    Args:
        action: The task's work; it must have done nothing when it raises LockHeld or DatabaseBusy
            (a run leaves what it fetched for its next try, which loads it first).
        wait: Seconds after the first try in which another try is started.

    Returns:
        What `action` returned.

    Raises:
        StillHeld: the last try, `wait` seconds after the first, met the database held too.
    """
    started = time.monotonic()
    pause, tries = FIRST_PAUSE, 1
    while True:
        try:
            return action()
        except (LockHeld, DatabaseBusy) as exc:
            waited = time.monotonic() - started
            if waited >= wait:
                times = "at its one try" if tries == 1 else f"at each of {tries} tries"
                raise StillHeld(f"{exc} (so {times} over {waited:.0f}s: not retried; "
                                "clear the task once it has let go)") from None
            nap = min(pause, wait - waited)
            logger.warning("%s; trying again in %.0fs (for up to %.0fs in all)", exc, nap, wait)
            time.sleep(nap)
            pause, tries = min(pause * 2, MAX_PAUSE), tries + 1
