"""The images client: a RESTClient on the run's sessions that reads each page once, and the paginator of
`GET /v2/{project_id}/images`."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Set

from requests import Response
from requests.auth import AuthBase

from dlt.common.jsonpath import TJsonPath, compile_path
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator

from .failures import MalformedResponse, PagingStuck
from .pages import ImagesPage, read_page
from .sessions import RequestCounter, ThreadSessions
from .settings import DEFAULT_SORT, PAGE_LIMIT, REQUEST_HEADERS

TOTAL_COUNT_PATH = compile_path("total_count")
"""The JSONPath of `total_count`, which OffsetPaginator asks for; ImagesPaginator reads the count
from the page instead."""


class ImagesClient(RESTClient):
    """A RESTClient whose pages are the `images` of each answer, read and checked once
    (`pages.read_page`): the paginator takes `total_count` from the page, not from the answer
    read again."""

    def extract_response(self, response: Response, data_selector: TJsonPath) -> List[Any]:
        return read_page(response.content)


def make_rest_client(
    base_url: str, auth: AuthBase, deadline: Optional[float] = None, sessions: Optional[ThreadSessions] = None,
    account: Optional[str] = None,
) -> tuple[ImagesClient, RequestCounter]:
    """An ImagesClient on this thread's session of `sessions` (a new ThreadSessions when not given),
    counting its requests; none is sent past `deadline`, each at `account`'s pace (its limiter of
    `sessions`).

    Call it in the thread that uses the client: dlt's sessions are per thread.
    """
    sessions = sessions or ThreadSessions()
    session, adapter = sessions.for_project(deadline, account)
    client = ImagesClient(
        base_url=base_url, headers=dict(REQUEST_HEADERS), auth=auth, session=session, data_selector="images",
        config=sessions.config,
    )
    return client, RequestCounter(adapter)


class ImagesPaginator(OffsetPaginator):
    """Offset paging over `GET /v2/{project_id}/images` that trusts the pages, not only `total_count`.

    Reads answers like:

        {"total_count": 250, "images": [{"id": "d6b368bc-...", "name": "...", ...}, ...]}

    and asks for `offset=0,100,200` with `limit=100`. The next offset is the
    current one plus the images the page brought. Paging goes on while the offset
    is below `total_count` or the page was full: an API that under-reports
    `total_count` still has every image read (the caller then sees the count
    disagree). It stops at an empty page or a short page past `total_count`.

    A page of more images than `limit` is not the API's answer: MalformedResponse.
    It records `total_count` of each page (a change means images were added or
    withdrawn while paging) and raises PagingStuck when a page brings only images
    already read while `total_count` stays the same. `resume()` makes the next
    `paginate` call go on from the page after the last one read instead of
    starting over (after a renewed token).
    """

    def __init__(self, limit: int = PAGE_LIMIT) -> None:
        super().__init__(limit=limit, total_path=TOTAL_COUNT_PATH)
        self.totals: List[int] = []
        self._seen: Set[str] = set()
        self._resume = False

    def init_request(self, request: Any) -> None:
        if self._resume:
            self._resume = False
            self._has_next_page = True
            self.update_request(request)
            return
        self.totals = []
        self._seen = set()
        super().init_request(request)

    def resume(self) -> None:
        """Have the next `paginate` call start at the first page not read yet."""
        self._resume = True

    @property
    def total_changed(self) -> bool:
        """True when `total_count` was not the same on every page."""
        return len(set(self.totals)) > 1

    def update_state(self, response: Response, data: Optional[List[Any]] = None) -> None:
        if not isinstance(data, ImagesPage):
            raise TypeError("ImagesPaginator pages with ImagesClient, whose pages carry their total_count")
        total, images = data.total_count, data
        offset = self.current_value
        if len(images) > self.value_step:
            raise MalformedResponse(
                f"the page at offset {offset} holds {len(images)} images, more than the limit of {self.value_step} asked for"
            )
        steady = not self.totals or self.totals[-1] == total
        self.totals.append(total)
        new_ids = {image["id"] for image in images} - self._seen
        self._seen.update(new_ids)
        if images and not new_ids and steady:
            raise PagingStuck(f"the page at offset {offset} repeats images already read (total_count {total})")
        self.current_value = offset + len(images)
        full = len(images) >= self.value_step
        self._has_next_page = bool(images) and (self.current_value < total or full)

    def __str__(self) -> str:
        return f"ImagesPaginator(offset={self.current_value}, limit={self.value_step})"


def page_params(filters: Dict[str, str]) -> Dict[str, str]:
    """Query parameters of every page: the user's filters over the default sort."""
    return {**DEFAULT_SORT, **filters}
