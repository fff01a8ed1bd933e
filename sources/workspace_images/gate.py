"""How many projects are fetched at once: at most `concurrency`, fewer while this process uses a whole CPU."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

logger = logging.getLogger("workspace_images")


class CpuGate:
    """Lets at most `limit` projects be fetched at once; the limit follows this process's CPU.

    It starts at `most` (the `concurrency` setting). Python runs one thread at a time, so
    when this process already uses a whole CPU, as against a fast API nearby, more projects
    at once only wait for each other, and each switch between them costs CPU: the limit
    halves, down to 2. When the process waits instead (for the network, the usual case), it
    grows back one by one up to `most`. It is looked at after a project ends, at most every
    `window` seconds.
    """

    FLOOR = 2
    BUSY = 0.9
    """CPU seconds per second above which the process counts as busy."""
    IDLE = 0.7
    """CPU seconds per second below which the limit may grow again."""

    def __init__(
        self,
        most: int,
        cpu: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
        window: float = 0.1,
    ) -> None:
        self.most = max(1, most)
        self.limit = self.most
        self.active = 0
        self._cpu, self._clock, self._window = cpu, clock, window
        self._cond = threading.Condition()
        self._mark = (clock(), cpu())

    def __enter__(self) -> "CpuGate":
        with self._cond:
            while self.active >= self.limit:
                self._cond.wait()
            self.active += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._cond:
            self.active -= 1
            self._adjust()
            self._cond.notify_all()

    def _adjust(self) -> None:
        now, used = self._clock(), self._cpu()
        span = now - self._mark[0]
        if span < self._window:
            return
        busy = (used - self._mark[1]) / span
        self._mark = (now, used)
        before = self.limit
        if busy >= self.BUSY:
            self.limit = max(min(self.FLOOR, self.most), self.limit // 2)
        elif busy < self.IDLE:
            self.limit = min(self.most, self.limit + 1)
        if self.limit != before:
            logger.debug("%d project(s) at a time (this process used %.2f CPU seconds per second)", self.limit, busy)
