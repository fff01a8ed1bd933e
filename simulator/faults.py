"""The faults the simulator can answer with: failed answers, their default bodies, and the
per-project and per-path faults a test arms (see :meth:`Simulator.fail_project` and
:meth:`Simulator.redirect`)."""

from __future__ import annotations

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
    """

    status: int = 0
    error_code: str = ""
    error_msg: str = ""
    retry_after: int | None = None
    drop: bool = False


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
                       "drip_headers", "silent", "slow", *RANDOM_FAULTS)
"""Kinds accepted by :meth:`Simulator.fail_project`."""
DRIP_KINDS = ("drip", "drip_headers")
"""Fault kinds that send a whole answer slowly, one byte every ``interval`` seconds."""


def _default_error(status: int) -> tuple[str, str]:
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"WKS.{status:04d}", f"{phrase}."


@dataclass
class _ProjectFault:
    kind: str
    fault: Fault | None
    times: int | None
    total: int | None = None
    interval: float = 0.0

    def active(self) -> bool:
        return self.times is None or self.times > 0

    def consume(self) -> None:
        if self.times is not None:
            self.times -= 1


@dataclass
class _Redirect:
    path_prefix: str
    location: str
    status: int
    times: int | None

    def active(self) -> bool:
        return self.times is None or self.times > 0
