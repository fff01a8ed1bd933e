"""The gateway's flow control: a token bucket per account, the limits they follow and their counts.

Huawei's API gateway limits the requests of each user (``policy user``) and
answers the ones over the limit with 429 ``APIGW.0308`` ("The throttling
threshold has been reached: policy user over ratelimit,limit:N,time:1
second"), with or without ``Retry-After``. The simulator keys a bucket by the
account a Workspace request authenticated as: its domain, that is the account
of the AK/SK pair or temporary AK that signed it, of the IAM user a token was
issued to, or the default account for the fixed token. Each account has one
IAM user and one permanent AK, so the account is also its user and its key.

A limit is a rate (tokens a second, refilled continuously) and a burst (the
tokens a full bucket holds, by default the whole part of the rate, at least
1). As at the gateway, a request is authenticated first: one refused 401 or
403 is never throttled and takes no token. One that passed and finds less
than one token is throttled (its answer's ``Retry-After`` is the whole seconds
until a token is there, at least 1) and takes none; it never reaches the
project. IAM's calls (``POST /v3/auth/tokens``, the project listings) are not
limited, and 404s and 405s answered before authentication have no account.

Time is given by the caller (the simulator passes its server clock,
``sim.iam.clock``), so tests move it to refill a bucket. A clock that goes
back refills nothing and restarts the reckoning from the new time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

THROTTLE_CODE = "APIGW.0308"
"""The gateway's ``error_code`` for a request over the limit."""


def throttle_message(rate: float) -> str:
    """The gateway's ``error_msg`` for a request over a limit of ``rate`` requests a second.

    ``limit`` is the rate as configured: a whole number without a decimal point (``limit:10``), else as
    Python writes the float (``limit:2.5``).
    """
    limit = str(int(rate)) if float(rate).is_integer() else repr(float(rate))
    return f"The throttling threshold has been reached: policy user over ratelimit,limit:{limit},time:1 second"


@dataclass(frozen=True)
class RateLimit:
    """A flow-control policy: how many requests a second an account may send.

    Attributes:
        rate: Requests a second (tokens added to the bucket a second), > 0.
        burst: Tokens a full bucket holds: requests that may go at once
            after a quiet spell, >= 1.
        retry_after: Whether a throttled answer carries ``Retry-After``
            (the whole seconds until a token is free, at least 1).
    """

    rate: float
    burst: int
    retry_after: bool = True

    @classmethod
    def of(cls, rate: float | None, burst: int | None = None, retry_after: bool = True) -> RateLimit | None:
        """Check and build a policy; None (no limit) when ``rate`` is None.

        ``burst`` defaults to the whole part of ``rate``, at least 1: a full
        bucket lets through one second's worth of requests at once, as a gateway
        counting ``N`` requests a second does.

        Raises:
            ValueError: ``rate`` is not a finite number > 0, ``burst`` not an
                integer >= 1, or a ``burst`` without a ``rate``.
        """
        if rate is None:
            if burst is not None:
                raise ValueError("burst needs a rate_limit")
            return None
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"rate_limit must be a finite number of requests a second > 0, got {rate!r}")
        if burst is None:
            burst = max(1, int(rate))
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an integer >= 1, got {burst!r}")
        return cls(float(rate), burst, bool(retry_after))


class TokenBucket:
    """Tokens refilled continuously at ``rate`` a second up to ``burst``; starts full. Thread-safe.

    Args:
        rate: Tokens added a second, > 0.
        burst: Most tokens held, >= 1.
        now: The time it is created, seconds.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now
        self._lock = threading.Lock()

    def take(self, now: float) -> float:
        """Take a token if one is there.

        Returns:
            0.0 when a token was taken; else the seconds until one will be
            there (nothing is taken).
        """
        with self._lock:
            if now > self._last:
                self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate


@dataclass(frozen=True)
class Throttled:
    """A request refused by flow control.

    Attributes:
        limit: The policy it went over.
        wait: Seconds until the account's bucket has a token again.
    """

    limit: RateLimit
    wait: float

    @property
    def retry_after(self) -> int | None:
        """The ``Retry-After`` value, whole seconds rounded up and at least 1; None when the policy sends none."""
        return max(1, math.ceil(self.wait)) if self.limit.retry_after else None

    @property
    def message(self) -> str:
        """The gateway's ``error_msg``."""
        return throttle_message(self.limit.rate)


class RateLimits:
    """The limit of every account, their buckets and the requests each allowed and throttled.

    Every account follows the shared limit (``None``: none) unless given one
    of its own with :meth:`set` (a limit or explicitly none). Changing a limit
    gives the accounts it applies to full buckets. Every public method takes
    the lock.

    Args:
        lock: The lock shared with the simulator.
        shared: The limit of accounts without one of their own.
    """

    def __init__(self, lock: threading.RLock, shared: RateLimit | None = None) -> None:
        self._lock = lock
        self._shared = shared
        self._own: dict[str, RateLimit | None] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._allowed: dict[str, int] = {}
        self._throttled: dict[str, int] = {}

    def set(self, limit: RateLimit | None, account: str | None = None) -> None:
        """Set the shared limit (``account`` None) or one account's own (``limit`` None: no limit for it)."""
        with self._lock:
            if account is None:
                self._shared = limit
                for name in [name for name in self._buckets if name not in self._own]:
                    del self._buckets[name]
            else:
                self._own[account] = limit
                self._buckets.pop(account, None)

    def follow_shared(self, account: str) -> None:
        """Drop an account's own limit: it follows the shared one again, from a full bucket."""
        with self._lock:
            self._own.pop(account, None)
            self._buckets.pop(account, None)

    def limit(self, account: str | None = None) -> RateLimit | None:
        """The limit an account follows (the shared one when ``account`` is None); None: no limit."""
        with self._lock:
            if account is not None and account in self._own:
                return self._own[account]
            return self._shared

    def admit(self, account: str, now: float) -> Throttled | None:
        """Count a request of an account and take a token for it from its bucket.

        Args:
            account: The account (domain) the request authenticated as.
            now: The server clock, seconds.

        Returns:
            None when the request may go on (a token was taken, or there is no
            limit); else why it is throttled.
        """
        with self._lock:
            limit = self._own[account] if account in self._own else self._shared
            if limit is not None:
                bucket = self._buckets.get(account)
                if bucket is None:
                    bucket = self._buckets[account] = TokenBucket(limit.rate, limit.burst, now)
                wait = bucket.take(now)
                if wait > 0:
                    self._throttled[account] = self._throttled.get(account, 0) + 1
                    return Throttled(limit, wait)
            self._allowed[account] = self._allowed.get(account, 0) + 1
            return None

    def stats(self) -> dict[str, dict[str, int]]:
        """``{account: {"allowed": n, "throttled": m}}`` for every account that sent a request since the last reset."""
        with self._lock:
            names = sorted(set(self._allowed) | set(self._throttled))
            return {name: {"allowed": self._allowed.get(name, 0), "throttled": self._throttled.get(name, 0)}
                    for name in names}

    def reset_stats(self) -> None:
        """Forget the counts (the buckets keep their tokens)."""
        with self._lock:
            self._allowed.clear()
            self._throttled.clear()
