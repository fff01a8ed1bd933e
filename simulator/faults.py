"""The faults the simulator can answer with, their default bodies, and the checks of what a test arms.

Failed answers, and the per-project and per-path faults a test arms (see
:meth:`Simulator.fail_project` and :meth:`Simulator.redirect`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from http import HTTPStatus

THROTTLE_MSG = "The throttling threshold has been reached: policy user over ratelimit,limit:100,time:1 minute"


@dataclass(frozen=True)
class Fault:
    """A failed answer to an images request.

    Attributes:
        status: HTTP status code.
        error_code: The body's ``error_code``.
        error_msg: The body's ``error_msg``.
        retry_after: Seconds for a ``Retry-After`` header; None sends none.
        drop: Close the connection without any response instead.
        echo: ``error_msg`` is the request as received instead: its request
            line, headers and body, lines ended by CRLF (a gateway that echoes
            what it was sent, credentials included).
    """

    status: int = 0
    error_code: str = ""
    error_msg: str = ""
    retry_after: int | None = None
    drop: bool = False
    echo: bool = False


STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("WKS.0001", "The request is invalid."),
    401: ("APIG.0301", "Incorrect IAM authentication information: the token is invalid."),
    403: ("APIG.0302", "The IAM or FunctionGraph authorizer does not allow the request."),
    404: ("APIG.0101", "The API does not exist or has not been published in the environment."),
    429: ("APIG.0308", THROTTLE_MSG),
    500: ("WKS.0500", "Internal server error."),
    502: ("APIG.0202", "Backend unavailable."),
    503: ("WKS.0503", "The service is unavailable. Try again later."),
    504: ("APIG.0201", "Backend timeout."),
}
"""Default error_code and error_msg of a status, for faults given only a status."""

RANDOM_FAULTS: dict[str, Fault] = {
    "throttle": Fault(429, "APIG.0308", THROTTLE_MSG, retry_after=1),
    "throttle_no_retry_after": Fault(429, "APIG.0308", THROTTLE_MSG),
    "internal_error": Fault(500, *STATUS_ERRORS[500]),
    "unavailable": Fault(503, *STATUS_ERRORS[503]),
    "drop": Fault(drop=True),
}
"""The faults ``fault_rate`` draws from (uniformly over ``Simulator.fault_kinds``)."""

PROJECT_FAULT_KINDS = ("status", "flaky", "retry_after", "malformed", "stuck", "total_count", "drip",
                       "drip_headers", "silent", "slow", "gzip_bomb", "oversized_page", "echo", "echo_iam",
                       *RANDOM_FAULTS)
"""Kinds accepted by :meth:`Simulator.fail_project`."""
DRIP_KINDS = ("drip", "drip_headers")
"""Fault kinds that send a whole answer slowly, one byte every ``interval`` seconds."""
DEFAULT_DRIP_INTERVAL = 0.2
"""Seconds between two bytes of a ``drip`` or ``drip_headers`` answer."""
SIZED_KINDS = ("gzip_bomb", "oversized_page")
"""Fault kinds that need a ``size``: the bytes a ``gzip_bomb`` inflates to, the images of an ``oversized_page``."""
BOMB_HEAD = b'{"total_count":1,"images":[{"id":"bomb","name":"'
BOMB_TAIL = b'"}]}'
"""What a ``gzip_bomb`` body inflates to: this head, as many ``0`` as make up its size, this tail
(valid JSON: a client that reads it whole has it all in memory)."""


def _default_error(status: int) -> tuple[str, str]:
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"WKS.{status:04d}", f"{phrase}."


class _Countdown:
    """Something armed for ``times`` requests (None: until cleared)."""

    times: int | None

    def active(self) -> bool:
        return self.times is None or self.times > 0

    def consume(self) -> None:
        if self.times is not None:
            self.times -= 1


@dataclass
class ProjectFault(_Countdown):
    """A fault armed on one project (see :meth:`Simulator.fail_project`): its kind and what it answers."""

    kind: str
    fault: Fault | None
    times: int | None
    total: int | None = None
    interval: float = 0.0
    size: int = 0


def project_fault(
    kind: str,
    *,
    status: int | None,
    error_code: str | None,
    error_msg: str | None,
    times: int | None,
    retry_after: int | None,
    total: int | None,
    interval: float | None,
    size: int | None = None,
) -> ProjectFault:
    """Check and build a fault of a project, with the arguments of :meth:`Simulator.fail_project`.

    The kinds:

    - ``status``: an error response (default 403 ``APIG.0302``), persistent.
    - ``flaky``: an error (default 503) for the first ``times`` (default 1)
      requests, then normal answers.
    - ``retry_after``: 429 ``APIG.0308`` with ``Retry-After`` for the first
      ``times`` (default 1) requests.
    - ``drop``: close the connection without a response.
    - ``malformed``: 200 with a truncated, non-JSON body.
    - ``stuck``: every offset answers with the first page; total_count is true.
    - ``total_count``: the true page of images, but ``"total_count": total``.
    - ``drip``: the status line and headers (with the true
      ``Content-Length``) at once, then the body one byte every
      ``interval`` seconds.
    - ``drip_headers``: the status line and headers one byte every
      ``interval`` seconds, then the body at once.
    - ``silent``: the request is read and never answered; the connection
      stays open until the client closes it or the simulator stops.
    - ``slow``: each request of the project (refused ones included) waits
      ``interval`` seconds before it is handled, on top of ``latency_ms``.
    - ``gzip_bomb``: 200 with ``Content-Encoding: gzip``, sent chunked as it
      is compressed, whose body inflates to ``size`` bytes of JSON (one image
      whose name is ``0`` repeated); about a thousandth of that goes on the wire.
    - ``oversized_page``: 200 with ``size`` images on the page whatever
      ``limit`` asked for: the project's own from ``offset``, then copies of
      the first under new ids.
    - ``echo``: an error (default 400 ``WKS.0001``) whose ``error_msg`` is
      the request as received: request line, headers (``X-Auth-Token``,
      ``Authorization``, ``X-Security-Token`` included) and body, CRLF
      between lines.
    - ``echo_iam``: IAM answers a token request scoped to the project with
      400 and the request as received (the password included) as its
      ``message``, in IAM's error shape.
    - any name in :data:`RANDOM_FAULTS`: that fault.

    ``drip`` and ``drip_headers`` deliver whatever the answer is, error
    faults included. Every kind but ``flaky`` and ``retry_after`` lasts
    until cleared unless ``times`` is given. Requests held by ``silent``,
    ``drip`` or ``slow`` end when :meth:`Simulator.stop` is called.

    Raises:
        ValueError: An unknown kind, or ``total``, ``interval`` or ``size``
            missing, invalid or given to a kind that does not use it.
    """
    if kind not in PROJECT_FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(PROJECT_FAULT_KINDS)}")
    if kind == "total_count":
        if isinstance(total, bool) or not isinstance(total, int):
            raise ValueError(f"the total_count fault needs an integer total, got {total!r}")
    elif total is not None:
        raise ValueError(f"total applies only to the total_count fault, not to {kind!r}")
    if kind in SIZED_KINDS:
        smallest = len(BOMB_HEAD) + len(BOMB_TAIL) if kind == "gzip_bomb" else 1
        if isinstance(size, bool) or not isinstance(size, int) or size < smallest:
            raise ValueError(f"the {kind} fault needs an integer size of at least {smallest}, got {size!r}")
    elif size is not None:
        raise ValueError(f"size applies only to the gzip_bomb and oversized_page faults, not to {kind!r}")
    if kind in (*DRIP_KINDS, "slow"):
        if interval is None and kind == "slow":
            raise ValueError("the slow fault needs an interval (seconds)")
        interval = DEFAULT_DRIP_INTERVAL if interval is None else interval
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or \
                not math.isfinite(interval) or interval < 0:
            raise ValueError(f"interval must be a finite number of seconds >= 0, got {interval!r}")
    elif interval is not None:
        raise ValueError(f"interval applies only to the drip, drip_headers and slow faults, not to {kind!r}")
    fault: Fault | None
    if kind in ("status", "flaky", "retry_after"):
        default_status = {"status": 403, "flaky": 503, "retry_after": 429}[kind]
        code = status if status is not None and kind != "retry_after" else default_status
        default_code, default_msg = _default_error(code)
        fault = Fault(
            code,
            error_code or default_code,
            error_msg or default_msg,
            retry_after=retry_after if code == 429 else None,
        )
        if times is None and kind != "status":
            times = 1
    elif kind == "echo":
        default_code, _ = _default_error(status or 400)
        fault = Fault(status or 400, error_code or default_code, echo=True)
    elif kind in RANDOM_FAULTS:
        fault = RANDOM_FAULTS[kind]
        if not fault.drop and (error_code or error_msg):
            fault = Fault(fault.status, error_code or fault.error_code, error_msg or fault.error_msg,
                          fault.retry_after)
    else:
        fault = None
    return ProjectFault(kind, fault, times, total=total, interval=float(interval or 0.0), size=size or 0)


@dataclass
class Redirect(_Countdown):
    """A redirect armed for the paths starting with a prefix (see :meth:`Simulator.redirect`)."""

    path_prefix: str
    location: str
    status: int
    times: int | None

    def __post_init__(self) -> None:
        if not self.path_prefix.startswith("/"):
            raise ValueError(f"path_prefix must start with '/', got {self.path_prefix!r}")
        if not 300 <= self.status <= 399:
            raise ValueError(f"a redirect needs a 3xx status, got {self.status}")
        if "\r" in self.location or "\n" in self.location:
            raise ValueError("location must not contain a line break")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be None or >= 1, got {self.times}")


class Redirects:
    """The redirects armed on a simulator, in the order added.

    Args:
        lock: The lock shared with the simulator's other parts.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._armed: list[Redirect] = []

    def add(self, redirect: Redirect) -> None:
        """Arm a redirect after the ones already armed."""
        with self._lock:
            self._armed.append(redirect)

    def clear(self) -> None:
        """Remove every redirect."""
        with self._lock:
            self._armed.clear()

    def take(self, path: str) -> Redirect | None:
        """Consume and return the first active redirect whose prefix starts ``path``, or None."""
        with self._lock:
            redirect = next((r for r in self._armed if r.active() and path.startswith(r.path_prefix)), None)
            if redirect is not None:
                redirect.consume()
            return redirect
