"""What went wrong with a request: the API's error bodies, one line of a failure, the errors a project fails with."""

from __future__ import annotations

import json
from typing import Any, Optional
from urllib.parse import urlsplit

from requests import HTTPError, RequestException, Response

from .safe_text import redact, safe_text
from .settings import ERR_ANSWER_TOO_LARGE, ERR_MALFORMED, ERR_PAGING_STUCK, ERR_REDIRECT

MAX_ERROR_MSG = 500
"""Longest API error message kept."""


def parse_error_body(response: Response) -> tuple[Optional[str], Optional[str]]:
    """Read `error_code` / `error_msg` from the gateway shape, or `code` / `message`
    from the Keystone shape IAM uses (`{"error": {"code": 401, "message": ...}}`).

    Known secrets are redacted from both (a gateway may echo the request back), before the
    message is cut; control characters are kept, to be escaped where the text is shown.
    """
    text = response.content.decode("utf-8", errors="replace")
    try:
        body = json.loads(text or "null")
    except ValueError:
        return None, _clip(text.strip() or None)
    if not isinstance(body, dict):
        return None, None
    if isinstance(body.get("error"), dict):
        inner = body["error"]
        return _code(inner.get("code")), _clip(inner.get("message"))
    return _code(body.get("error_code") or body.get("code")), _clip(body.get("error_msg") or body.get("message"))


def error_text(response: Response) -> str:
    """What an error answer says, for a message: its `error_msg` / `message`, else its text, else
    the status's reason; as `safe_text` shows it."""
    _, message = parse_error_body(response)
    return safe_text(message or response.reason or "")


def failure_text(http_status: Optional[int], error_code: Optional[str], error_msg: Optional[str]) -> str:
    """One line for a failed request or project: `HTTP 403 APIG.0302: <message>`, each part when
    known; the API's code and message as `safe_text` shows them."""
    code, message = (safe_text(part) if part else "" for part in (error_code, error_msg))
    head = " ".join(part for part in (f"HTTP {http_status}" if http_status else "", code) if part)
    if not head:
        return message
    return f"{head}: {message}" if message else head


def first_line(exc: BaseException, default: Optional[str] = None) -> str:
    """One line that says what `exc` is: the first non-blank line of its message, stripped (the
    last one when the message is a traceback, as dlt puts some in its messages); `default`, else
    the exception's class name, when the message is empty."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return exc.__class__.__name__ if default is None else default
    if lines[0].startswith("Traceback") or lines[0].endswith("Traceback (most recent call last):"):
        return lines[-1]
    return lines[0]


def _code(value: Any) -> Optional[str]:
    return redact(str(value)) if value is not None else None


def _clip(value: Any) -> Optional[str]:
    """The text of `value`, known secrets redacted, cut to MAX_ERROR_MSG characters."""
    if value is None:
        return None
    text = redact(str(value))
    return text if len(text) <= MAX_ERROR_MSG else text[: MAX_ERROR_MSG - 1] + "…"


def redirect_target(response: Response) -> str:
    """`scheme://host:port` a redirect points to (never its path or query, which may carry anything)."""
    location = redact(response.headers.get("Location") or "")
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else (repr(location[:60]) if location else "nowhere")


class FetchError(Exception):
    """A project could not be fetched. Carries what `project_runs` records."""

    def __init__(
        self,
        message: str,
        http_status: Optional[int] = None,
        error_code: Optional[str] = None,
        error_msg: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code
        self.error_msg = error_msg or message


class ApiError(FetchError, HTTPError):
    """The API answered with an error status. A requests `HTTPError`, so dlt's retry
    machinery sees the response and retries 429 and 5xx."""

    def __init__(self, response: Response) -> None:
        code, msg = parse_error_body(response)
        FetchError.__init__(self, failure_text(response.status_code, code, msg), response.status_code, code,
                            msg or response.reason)
        self.response = response
        self.request = response.request


class MalformedResponse(FetchError):
    """A 200 answer that is not the JSON the API documents."""

    def __init__(self, detail: str, http_status: Optional[int] = 200) -> None:
        super().__init__(f"malformed response: {detail}", http_status, ERR_MALFORMED)


class RedirectRefused(FetchError):
    """The API answered with a redirect. It is never followed: the request carries credentials."""

    def __init__(self, response: Response) -> None:
        target = redirect_target(response)
        super().__init__(
            f"HTTP {response.status_code} redirect to {target}: not followed, credentials are never sent "
            "to another address; check the endpoint",
            response.status_code,
            ERR_REDIRECT,
        )


class AnswerTooLarge(FetchError, RequestException):
    """An answer that holds more than `max_answer_bytes` once decoded; it was read no further.

    A RequestException of no kind dlt retries (the same answer would come again), so that
    whatever reads through the sessions (the images client, IAM) meets it as a failed request.
    """

    def __init__(self, limit: int, http_status: Optional[int]) -> None:
        FetchError.__init__(
            self,
            f"the answer is larger than max_answer_bytes ({limit} bytes, decoded): reading stopped there; "
            "raise max_answer_bytes if the API's pages are really that large",
            http_status,
            ERR_ANSWER_TOO_LARGE,
        )


class ProjectTimedOut(Exception):
    """The project's time budget (`project_timeout`) ran out, or the wait before a retry would
    outlast it; no request is sent after that.

    Args:
        wait: When a wait before a retry is what outlasts the budget, that wait, said whole:
            `HTTP 429 APIG.0308 asked to wait 999999s (Retry-After) before a retry`.
        left: Seconds of the budget that were left then.
        http_status: HTTP status of the answer the retry was for, if any.
    """

    def __init__(self, wait: Optional[str] = None, left: float = 0.0, http_status: Optional[int] = None) -> None:
        super().__init__(wait or "project_timeout ran out")
        self.wait, self.left, self.http_status = wait, left, http_status

    def reason(self, budget: float) -> str:
        """Why the project stopped, for `error_msg`; `budget` is its `project_timeout` in seconds."""
        if self.wait is None:
            return f"the project took longer than project_timeout ({budget:g}s)"
        return f"{self.wait}, more than the {max(self.left, 0.0):.1f}s left of project_timeout ({budget:g}s)"


class PagingStuck(FetchError):
    """Paging does not advance: pages stop bringing images the project says it has."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"paging does not advance: {detail}", 200, ERR_PAGING_STUCK)
