"""HTTP side of the source: sessions with dlt's retries, API errors, the images paginator."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Set

from requests import HTTPError, PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator

from .settings import DEFAULT_SORT, ERR_MALFORMED, ERR_PAGING_STUCK, PAGE_LIMIT, REQUEST_HEADERS

MAX_ERROR_MSG = 500
"""Longest API error message kept."""


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
        summary = f"HTTP {response.status_code}"
        if code:
            summary += f" {code}"
        if msg:
            summary += f": {msg}"
        FetchError.__init__(self, summary, response.status_code, code, msg or response.reason)
        self.response = response
        self.request = response.request


class MalformedResponse(FetchError):
    """A 200 answer that is not the JSON the API documents."""

    def __init__(self, detail: str, http_status: Optional[int] = 200) -> None:
        super().__init__(f"malformed response: {detail}", http_status, ERR_MALFORMED)


class PagingStuck(FetchError):
    """Paging does not advance: pages stop bringing images the project says it has."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"paging does not advance: {detail}", 200, ERR_PAGING_STUCK)


def parse_error_body(response: Response) -> tuple[Optional[str], Optional[str]]:
    """Read `error_code` / `error_msg` from the gateway shape, or `code` / `message`
    from the Keystone shape IAM uses (`{"error": {"code": 401, "message": ...}}`)."""
    try:
        body = json.loads(response.content.decode("utf-8", errors="replace") or "null")
    except ValueError:
        text = response.content[:MAX_ERROR_MSG].decode("utf-8", errors="replace").strip()
        return None, text or None
    if not isinstance(body, dict):
        return None, None
    if isinstance(body.get("error"), dict):
        inner = body["error"]
        code = inner.get("code")
        return (str(code) if code is not None else None), _clip(inner.get("message"))
    code = body.get("error_code") or body.get("code")
    return (str(code) if code is not None else None), _clip(body.get("error_msg") or body.get("message"))


def _clip(value: Any) -> Optional[str]:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= MAX_ERROR_MSG else text[: MAX_ERROR_MSG - 1] + "…"


def check_response(response: Response, *args: Any, **kwargs: Any) -> None:
    """Response hook: raise ApiError on an error status, parse JSON once on success.

    The parsed body replaces `response.json`, so the client and the paginator share one parse.
    """
    if response.status_code >= 400:
        raise ApiError(response)
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise MalformedResponse(f"body is not JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(body, dict) or not isinstance(body.get("images"), list):
        raise MalformedResponse("expected an object with an `images` list")
    if not isinstance(body.get("total_count"), int) or body["total_count"] < 0:
        raise MalformedResponse(f"`total_count` is not a non-negative integer: {body.get('total_count')!r}")
    if not all(isinstance(image, dict) and image.get("id") for image in body["images"]):
        raise MalformedResponse("an image without an `id`")
    response.json = lambda **_: body  # type: ignore[method-assign]


class CountingAdapter(HTTPAdapter):
    """Counts every request that goes on the wire, retries included."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = 0

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        self.sent += 1
        return super().send(request, *args, **kwargs)


class RequestCounter:
    """Logical requests (what the client asked for) and attempts (what went on the wire)."""

    def __init__(self, adapter: CountingAdapter) -> None:
        self._adapter = adapter
        self.logical = 0

    @property
    def attempts(self) -> int:
        return self._adapter.sent

    @property
    def retries(self) -> int:
        return max(0, self._adapter.sent - self.logical)


def make_rest_client(base_url: str, auth: AuthBase) -> tuple[RESTClient, RequestCounter]:
    """A RESTClient whose session retries as `[runtime]` configures it, counting its requests.

    Call it in the thread that uses the client: dlt's sessions are per thread.
    """
    session = Client(raise_for_status=False).session
    adapter = CountingAdapter(pool_maxsize=4)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    counter = RequestCounter(adapter)
    retrying_send: Callable[..., Response] = session.send

    def counted_send(request: PreparedRequest, **kwargs: Any) -> Response:
        counter.logical += 1
        return retrying_send(request, **kwargs)

    session.send = counted_send  # type: ignore[method-assign]
    client = RESTClient(
        base_url=base_url, headers=dict(REQUEST_HEADERS), auth=auth, session=session, data_selector="images"
    )
    return client, counter


class ImagesPaginator(OffsetPaginator):
    """Offset paging over `GET /v2/{project_id}/images`, watching for a moving set.

    Reads answers like:

        {"total_count": 250, "images": [{"id": "d6b368bc-...", "name": "...", ...}, ...]}

    and asks for `offset=0,100,200` with `limit=100` until `offset >= total_count`.
    It records `total_count` of each page (a change means images were added or
    withdrawn while paging) and raises PagingStuck when a page brings no image
    that was not already seen while `total_count` stays the same, or an empty
    page comes before `total_count` is reached.
    """

    def __init__(self, limit: int = PAGE_LIMIT) -> None:
        super().__init__(limit=limit, total_path="total_count")
        self.totals: List[int] = []
        self._seen: Set[str] = set()

    def init_request(self, request: Any) -> None:
        self.totals = []
        self._seen = set()
        super().init_request(request)

    @property
    def total_changed(self) -> bool:
        """True when `total_count` was not the same on every page."""
        return len(set(self.totals)) > 1

    def update_state(self, response: Response, data: Optional[List[Any]] = None) -> None:
        total = response.json()["total_count"]
        offset = self.current_value
        steady = not self.totals or self.totals[-1] == total
        self.totals.append(total)
        images = data or []
        new_ids = {image["id"] for image in images} - self._seen
        self._seen.update(new_ids)
        if not images and offset < total and steady:
            raise PagingStuck(f"empty page at offset {offset} while total_count is {total}")
        if images and not new_ids and steady:
            raise PagingStuck(f"the page at offset {offset} repeats images already read (total_count {total})")
        self.current_value = offset + self.value_step
        self._has_next_page = bool(images) and self.current_value < total

    def __str__(self) -> str:
        return f"ImagesPaginator(offset={self.current_value}, limit={self.value_step})"


def page_params(filters: Dict[str, str]) -> Dict[str, str]:
    """Query parameters of every page: the user's filters over the default sort."""
    return {**DEFAULT_SORT, **filters}
