"""Pacing of each account's Workspace requests at its API gateway's rate limit, learned from its 429s.

Huawei's API gateway limits the requests of each user and answers those over
the limit 429 `APIG(W).0308` "The throttling threshold has been reached:
policy user over ratelimit,limit:N,time:1 second", with or without
`Retry-After`. Every project of an account shares its limit, so the projects
fetched at once must share one pace: an AccountLimiter per account, which
every wire attempt of a Workspace request of that account passes
(`acquire`) before it is sent. IAM's requests are not paced by it.

How the pace adapts:

- Until the first 429 (and with no `rate_limit` set) there is no pace: `acquire`
  only notes the time, no lock, no wait.
- A 429 whose message says `limit:N,time:1 second` (N requests a second; a
  `minute` counts N / 60 a second) sets the ceiling to 0.95 N (or the
  user's `rate_limit` when lower) and the pace to the ceiling. A 429 that says
  no limit halves the pace (from the rate actually sent over the last second
  when there was none), never below MIN_RATE. Only a 429 of a request sent
  after the last cut cuts again (the ones sent before it were already
  counted), and then halves the pace when it is already at the ceiling: the
  account's quota is shared with someone else.
- A `Retry-After` pauses the whole account, every thread, until then; without
  one, the next request goes no sooner than one interval (1 / pace) after the 429.
- Each answer that succeeds grows the pace additively, by GROWTH requests a
  second per second of successes, up to the ceiling (and without bound when
  no ceiling is known, until the next 429).
- Requests go one at a time at the pace (a burst of 1): a request waits for
  its turn, and when that would be past its project's deadline, `acquire`
  raises ThrottleTimedOut at once instead of waiting.
"""

from __future__ import annotations

import collections
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Mapping, Optional, Sequence

from requests import HTTPError, Response

from .failures import ProjectTimedOut, failure_text, parse_error_body
from .safe_text import safe_text

MIN_RATE = 0.5
"""The slowest pace a cut without `limit:N` goes to, requests a second."""

GROWTH = 1.0
"""Requests a second the pace grows by per second of successful answers."""

LEARNED_SHARE = 0.95
"""The share of the gateway's `limit:N` the pace keeps to, leaving room for its clock and ours."""

SENT_WINDOW = 256
"""Send times kept while there is no pace, to measure the rate sent over the last second."""

LIMIT_IN_MESSAGE = re.compile(
    r"limit:\s*([0-9]+(?:\.[0-9]+)?)\s*,\s*time:\s*([0-9]+(?:\.[0-9]+)?)?\s*(second|minute|hour|day)s?\b")
"""`limit:N,time:1 second` (or `minute`, `hour`, `day`) in the gateway's throttling message."""

TIME_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}


class ThrottleTimedOut(ProjectTimedOut):
    """Waiting for the account's pace or pause would pass the project's deadline.

    Args:
        wait: Seconds the request would have waited (kept as `seconds`).
        rate: The account's pace then, requests a second (None: none).
    """

    def __init__(self, wait: float, rate: Optional[float]) -> None:
        super().__init__(f"the account's pace would make the request wait {wait:.1f}s")
        self.seconds = wait
        self.rate = rate


@dataclass(frozen=True)
class ThrottleStats:
    """What throttling did to one account: 429s, seconds waited for the pace, the pace reached."""

    throttled: int
    waited: float
    rate: Optional[float]

    def text(self) -> str:
        """`throttled 12 times, waited 4.1s, rate 4.8/s`."""
        rate = f"{self.rate:.1f}/s" if self.rate is not None else "unpaced"
        return f"throttled {times(self.throttled)}, waited {self.waited:.1f}s, rate {rate}"


def times(count: int) -> str:
    """`1 time`, `12 times`."""
    return f"{count} time" if count == 1 else f"{count} times"


def retry_after_seconds(response: Response) -> Optional[float]:
    """Seconds a 429's `Retry-After` asks for (whole seconds as the gateway sends them); None when it
    asks for none or is not a number of seconds."""
    header = (response.headers.get("Retry-After") or "").strip()
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", header):
        return None
    seconds = float(header)
    return seconds if seconds > 0 else None


def gateway_limit(message: Optional[str]) -> Optional[float]:
    """The limit the gateway's throttling message says, in requests a second: N / T of `limit:N,time:T
    second` (`minute`, ...); None when it says none or no time to count it over."""
    found = LIMIT_IN_MESSAGE.search(message or "")
    if found is None:
        return None
    count, span, unit = found.groups()
    seconds = float(span or 1) * TIME_UNITS[unit]
    limit = float(count) / seconds if seconds > 0 else 0.0
    return limit if limit > 0 else None


class AccountLimiter:
    """The pace of one account's Workspace requests, shared by every thread of a run. Thread-safe.

    Args:
        name: The account.
        rate_limit: The user's `rate_limit`, requests a second: the pace from the start and
            the ceiling it never goes above; None: no pace until the first 429.
        clock: Seconds, monotonic (tests pass their own).
        sleep: Waits that many seconds (tests pass their own).
    """

    def __init__(self, name: str, rate_limit: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.name = name
        self.rate_limit = rate_limit
        self.rate: Optional[float] = rate_limit
        """Requests a second the account is paced at; None: no pace."""
        self.ceiling: Optional[float] = rate_limit
        """The pace never grows above this: the user's rate_limit or 0.95 of the gateway's limit."""
        self.paused_until = 0.0
        self.throttled_count = 0
        self.waited = 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = 0.0
        self._cut_at = -math.inf
        self._grown_at = 0.0
        self._sent: Deque[float] = collections.deque(maxlen=SENT_WINDOW)

    def acquire(self, deadline: Optional[float] = None) -> float:
        """Wait until a request may go: its turn at the pace, after any pause of the account.

        Returns:
            The time it goes (the limiter's clock).

        Raises:
            ThrottleTimedOut: its turn would come at or past `deadline` (nothing is waited).
        """
        now = self._clock()  # before the pace is read: a cut that comes after it is after this request
        if self.rate is None:  # no 429 yet and no rate_limit: note the time only
            self._sent.append(now)
            return now
        while True:
            with self._lock:
                now = self._clock()
                rate = self.rate or MIN_RATE
                start = max(now, self._next_free, self.paused_until)
                if deadline is not None and start > now and start >= deadline:
                    raise ThrottleTimedOut(start - now, rate)
                self._next_free = start + 1.0 / rate
                pause = self.paused_until
            if start <= now:
                return now
            self._sleep(start - now)
            with self._lock:
                self.waited += start - now
                if self.paused_until <= pause:  # no pause came while it waited
                    return start

    def throttled(self, response: Response, sent_at: Optional[float] = None) -> None:
        """A request of the account, sent at `sent_at` (as `acquire` returned it), was answered 429:
        count it, cut the pace, pause the account as its `Retry-After` asks."""
        message = parse_error_body(response)[1]
        limit = gateway_limit(message)
        pause = retry_after_seconds(response)
        with self._lock:
            now = self._clock()
            self.throttled_count += 1
            if sent_at is None or sent_at >= self._cut_at:  # sent after the last cut: cut again
                self._cut(now, limit)
            if pause is not None:
                self.paused_until = max(self.paused_until, now + pause)
            else:
                self._next_free = max(self._next_free, now + 1.0 / (self.rate or MIN_RATE))
            self._grown_at = max(now, self.paused_until)

    def _cut(self, now: float, limit: Optional[float]) -> None:
        """The pace after a 429 (the lock held)."""
        if limit is not None:
            learned = limit * LEARNED_SHARE
            self.ceiling = learned if self.ceiling is None else min(self.ceiling, learned)
            if self.rate is None or self.rate > self.ceiling + 1e-9:  # above the limit: down to it
                self.rate = self.ceiling
                self._cut_at = now
                return
        # no limit said, or already at it (the quota is shared with someone else): halve
        base = self.rate if self.rate is not None else self._sent_rate(now)
        self.rate = max(MIN_RATE, base / 2)
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        self._cut_at = now

    def _sent_rate(self, now: float) -> float:
        """Requests sent over the last second (at least 1), from the send times noted while unpaced."""
        recent = [t for t in list(self._sent) if t > now - 1.0]
        if len(recent) == self._sent.maxlen and recent[0] < now:
            return len(recent) / (now - recent[0])
        return float(max(1, len(recent)))

    def succeeded(self) -> None:
        """A request of the account was answered: grow the pace by GROWTH a second of successes, up to the ceiling."""
        rate, ceiling = self.rate, self.ceiling
        if rate is None or (ceiling is not None and rate >= ceiling):
            return
        with self._lock:
            now = self._clock()
            if self.rate is None or now <= self._grown_at:
                return
            grown = self.rate + GROWTH * min(now - self._grown_at, 1.0)
            self.rate = grown if self.ceiling is None else min(grown, self.ceiling)
            self._grown_at = now

    def stats(self) -> ThrottleStats:
        """The account's 429s, the seconds its requests waited for the pace, and its pace now."""
        with self._lock:
            return ThrottleStats(self.throttled_count, self.waited, self.rate)


class Limiters:
    """The limiters of a run, one per account, made on first use.

    Args:
        rate_limits: The user's `rate_limit` of each account that has one.
        clock, sleep: As AccountLimiter takes them.
    """

    def __init__(self, rate_limits: Optional[Mapping[str, Optional[float]]] = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate_limits = dict(rate_limits or {})
        self._clock, self._sleep = clock, sleep
        self._limiters: Dict[str, AccountLimiter] = {}
        self._lock = threading.Lock()

    def of(self, account: str) -> AccountLimiter:
        """The limiter of `account`."""
        limiter = self._limiters.get(account)
        if limiter is None:
            with self._lock:
                limiter = self._limiters.get(account)
                if limiter is None:
                    limiter = self._limiters[account] = AccountLimiter(
                        account, self.rate_limits.get(account), self._clock, self._sleep)
        return limiter

    def stats(self) -> Dict[str, ThrottleStats]:
        """The stats of every account that was throttled or waited, by name."""
        with self._lock:
            limiters = list(self._limiters.values())
        found = {limiter.name: limiter.stats() for limiter in limiters}
        return {name: stats for name, stats in sorted(found.items()) if stats.throttled or stats.waited}


class AccountTurns:
    """Which project a free thread fetches next: one of the account with the fewest projects in flight,
    then the fewest taken, then the first in the order given. Accounts with limits of their own are
    so fetched side by side, each at its own pace, instead of one after the other; one account's
    projects go in the order given. Thread-safe.

    Args:
        accounts: The account of each project, in the order given.
    """

    def __init__(self, accounts: Sequence[str]) -> None:
        self._accounts = list(accounts)
        self._left: Dict[str, Deque[int]] = {}
        for index, account in enumerate(self._accounts):
            self._left.setdefault(account, collections.deque()).append(index)
        self._rank = {account: (0, 0, order) for order, account in enumerate(self._left)}
        self._lock = threading.Lock()

    def take(self) -> int:
        """The index of the next project to fetch, counted in flight until `done` (one take per project)."""
        with self._lock:
            account = min((name for name, left in self._left.items() if left), key=self._rank.__getitem__)
            flying, taken, order = self._rank[account]
            self._rank[account] = (flying + 1, taken + 1, order)
            return self._left[account].popleft()

    def done(self, index: int) -> None:
        """The project `take` gave as `index` is done."""
        with self._lock:
            account = self._accounts[index]
            flying, taken, order = self._rank[account]
            self._rank[account] = (flying - 1, taken, order)


class Pacing:
    """One thread's side of pacing (its BoundedAdapter's): the limiter of the project it fetches
    (None: no pacing, 429s are dlt's retries) and its running counts, which `since` reads per project."""

    def __init__(self) -> None:
        self.limiter: Optional[AccountLimiter] = None
        self.sent_at: Optional[float] = None
        """When the last attempt went, on the limiter's clock."""
        self.waited = 0.0
        self.throttled = 0
        self.last_throttle: Optional[str] = None
        """`APIGW.0308: The throttling threshold ...` of the last 429."""

    def acquire(self, deadline: Optional[float]) -> None:
        """Before an attempt: wait for its turn at the limiter (ThrottleTimedOut when that would pass `deadline`)."""
        if self.limiter is None:
            return
        asked_at = time.monotonic()
        self.sent_at = self.limiter.acquire(deadline)
        self.waited += time.monotonic() - asked_at

    def send(self, attempt: Callable[[], Response]) -> Response:
        """The answer of `attempt` (one request with dlt's retries of everything but 429) that is not a
        429: each 429 is counted, cuts the limiter, and the request goes again when its turn comes.
        A 429 a response hook raised (ApiError) is met the same way."""
        assert self.limiter is not None, "Pacing.send needs a limiter"
        while True:
            try:
                response = attempt()
            except HTTPError as exc:
                if exc.response is None or exc.response.status_code != 429:
                    raise
                response = exc.response
            if response.status_code != 429:
                if response.status_code < 400:
                    self.limiter.succeeded()
                return response
            self.throttled += 1
            self.last_throttle = throttle_text(response)
            self.limiter.throttled(response, self.sent_at)

    def since(self) -> PacingCounts:
        """The counts from now on (a project's)."""
        return PacingCounts(self)


class PacingCounts:
    """A project's 429s and seconds waited for its account's pace (its thread's Pacing since it started)."""

    def __init__(self, pacing: Pacing) -> None:
        self._pacing = pacing
        self._throttled, self._waited = pacing.throttled, pacing.waited

    @property
    def throttled(self) -> int:
        return self._pacing.throttled - self._throttled

    @property
    def waited(self) -> float:
        return self._pacing.waited - self._waited

    @property
    def last_throttle(self) -> Optional[str]:
        return self._pacing.last_throttle if self.throttled else None

    @property
    def rate(self) -> Optional[float]:
        """The pace of the account now (None: none)."""
        return self._pacing.limiter.rate if self._pacing.limiter is not None else None

    def failure(self, wait: float) -> str:
        """The error_msg of the project when its next request would have waited `wait` seconds, past its time."""
        return throttled_message(self.throttled, self.last_throttle, self.waited, self.rate, wait)


def throttle_text(response: Response) -> str:
    """`APIGW.0308: The throttling threshold ...` of a throttled answer, safe to show."""
    code, message = parse_error_body(response)
    return failure_text(None, code, message)


def throttled_message(count: int, last: Optional[str], waited: float, rate: Optional[float], wait: float) -> str:
    """The error_msg of a project whose next request would wait `wait` seconds, past its time:
    `throttled 12 times (APIGW.0308: ...), waited 41s, last at 4.8 requests/s; the next request would
    wait 3s more, past the project's time`."""
    said = f" ({safe_text(last)})" if count and last else ""
    pace = f"last at {rate:.1f} requests/s" if rate is not None else "unpaced"
    return (f"throttled {times(count)}{said}, waited {waited:.0f}s, {pace}; "
            f"the next request would wait {wait:.0f}s more, past the project's time")
