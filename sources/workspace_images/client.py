"""HTTP side of the source: sessions with dlt's retries, API errors, the images paginator."""

from __future__ import annotations

import heapq
import itertools
import json
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union
from urllib.parse import urlsplit

import orjson
from requests import HTTPError, PreparedRequest, RequestException, Response, Session
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.exceptions import ReadTimeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.common.jsonpath import compile_path
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import OffsetPaginator

from .settings import DEFAULT_SORT, ERR_MALFORMED, ERR_PAGING_STUCK, ERR_REDIRECT, PAGE_LIMIT, REQUEST_HEADERS

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


def redirect_target(response: Response) -> str:
    """`scheme://host:port` a redirect points to (never its path or query, which may carry anything)."""
    location = response.headers.get("Location") or ""
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else (repr(location[:60]) if location else "nowhere")


class ProjectTimedOut(Exception):
    """The project's time budget (`project_timeout`) ran out; no request is sent after that."""


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


def error_text(response: Response) -> str:
    """What an error answer says, for a message: its `error_msg` / `message`, else its text, else
    the status's reason."""
    _, message = parse_error_body(response)
    return message or response.reason or ""


def failure_text(http_status: Optional[int], error_code: Optional[str], error_msg: Optional[str]) -> str:
    """One line for a failed request or project: `HTTP 403 APIG.0302: <message>`, each part when known."""
    head = " ".join(part for part in (f"HTTP {http_status}" if http_status else "", error_code or "") if part)
    if not head:
        return error_msg or ""
    return f"{head}: {error_msg}" if error_msg else head


def _clip(value: Any) -> Optional[str]:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= MAX_ERROR_MSG else text[: MAX_ERROR_MSG - 1] + "…"


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def parse_json(content: bytes) -> Any:
    """The JSON `content` holds, as `json.loads` reads it, read by orjson (about three times
    faster) where the two agree: orjson refuses what json reads otherwise (NaN, a lone
    surrogate, a byte order mark) and reads integers of 19 digits or more as floats, so text
    with either is read by json."""
    if content.translate(_DIGITS_AS_ZERO).find(_LONG_NUMBER) < 0:  # no run of 19 digits
        try:
            return orjson.loads(content)
        except ValueError:
            pass
    return json.loads(content)


def check_response(response: Response, *args: Any, **kwargs: Any) -> None:
    """Response hook: raise ApiError on an error status, parse JSON once on success.

    The parsed body replaces `response.json`, so the client and the paginator share one parse.
    """
    if response.status_code >= 400:
        raise ApiError(response)
    if response.status_code >= 300:
        raise RedirectRefused(response)
    try:
        body = parse_json(response.content)
    except ValueError as exc:
        raise MalformedResponse(f"body is not JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(body, dict) or not isinstance(body.get("images"), list):
        raise MalformedResponse("expected an object with an `images` list")
    if not isinstance(body.get("total_count"), int) or body["total_count"] < 0:
        raise MalformedResponse(f"`total_count` is not a non-negative integer: {body.get('total_count')!r}")
    if not all(isinstance(image, dict) and image.get("id") for image in body["images"]):
        raise MalformedResponse("an image without an `id`")
    response.json = lambda **_: body  # type: ignore[method-assign]


class _Watch:
    """The time limit of one request: when it passes, the request's sockets are shut down,
    which ends a read that is blocked waiting for the server."""

    __slots__ = ("deadline", "fired", "cancelled", "sockets")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        self.cancelled = False
        self.sockets: List[socket.socket] = []

    def add(self, sock: Optional[socket.socket]) -> None:
        if sock is None:
            return
        with _WATCHDOG.lock:
            if self.fired:
                _shut(sock)
            else:
                self.sockets.append(sock)

    def fire(self) -> None:
        self.fired = True
        for sock in self.sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """One thread for every request's time limit (a heap of deadlines), so that a request
    costs no thread of its own."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self._heap: List[Tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: Optional[threading.Thread] = None

    def watch(self, seconds: float) -> _Watch:
        watch = _Watch(time.monotonic() + seconds)
        with self.lock:
            heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="workspace_images-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is watch:  # the thread sleeps until an earlier deadline otherwise
                self.lock.notify()
        return watch

    def cancel(self, watch: _Watch) -> None:
        with self.lock:
            watch.cancelled = True
            watch.sockets.clear()

    def _run(self) -> None:
        with self.lock:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self.lock.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self.lock.wait(wait)
                    continue
                heapq.heappop(self._heap)[2].fire()


_WATCHDOG = _Watchdog()
_current = threading.local()


def _track(sock: Optional[socket.socket]) -> None:
    watch: Optional[_Watch] = getattr(_current, "watch", None)
    if watch is not None:
        watch.add(sock)


class _Tracked:
    """Hands the connection's socket to the request's watch, whether new or reused."""

    sock: Optional[socket.socket]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _track(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _track(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _TrackedHTTPConnection(_Tracked, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection  # type: ignore[assignment]


_TRACKED_POOLS = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}

TimeoutArg = Union[None, float, Tuple[Optional[float], Optional[float]]]


def _whole_limit(timeout: TimeoutArg) -> Optional[float]:
    """The bound of a whole request from requests' timeout (a number, or (connect, read))."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        parts = [t for t in timeout if t is not None]
        return max(parts) if parts else None
    return float(timeout)


class BoundedAdapter(HTTPAdapter):
    """Sends requests with a time limit on the whole request, and counts them.

    `requests`' timeout only bounds each wait for a byte: a server that sends its
    headers and then drips the body never trips it. Here the timeout (dlt's
    `[runtime] request_timeout`) bounds the whole exchange, connect to last body
    byte, and past `deadline` (the project's budget, `time.monotonic()` based) no
    request is sent at all.
    """

    def __init__(self, *args: Any, deadline: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = 0
        self.asked = 0
        self.deadline = deadline

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _TRACKED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _TRACKED_POOLS
        return manager

    def send(  # type: ignore[override]
        self, request: PreparedRequest, stream: bool = False, timeout: TimeoutArg = None, **kwargs: Any
    ) -> Response:
        limit = _whole_limit(timeout)
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ProjectTimedOut()
            limit = left if limit is None else min(limit, left)
            timeout = limit if not isinstance(timeout, tuple) else tuple(
                limit if t is None else min(t, limit) for t in timeout)  # type: ignore[assignment]
        if limit is not None and limit <= 0:
            raise ValueError(f"request_timeout must be more than 0 seconds, got {limit:g}")
        self.sent += 1
        watch = _WATCHDOG.watch(limit) if limit is not None else None
        _current.watch = watch
        try:
            response = super().send(request, stream=True, timeout=timeout, **kwargs)
            if not stream:
                response.content  # read the body while the watch is on
        except RequestException:
            if watch is not None and watch.fired:
                raise ReadTimeout(
                    f"no whole answer within {limit:g}s (request_timeout)", request=request
                ) from None
            raise
        finally:
            _current.watch = None
            if watch is not None:
                _WATCHDOG.cancel(watch)
        return response


def make_session(deadline: Optional[float] = None, retrying: Optional[Client] = None) -> Tuple[Session, BoundedAdapter]:
    """A session with dlt's retries (`[runtime]` settings), whole-request time limits and
    no redirects: a redirected request would carry its credentials (token, signature,
    password) to whatever address the redirect names. The adapter counts what is asked
    (`asked`) and what goes on the wire (`sent`).

    `retrying` is a dlt `Client` whose settings the session takes; one made here when not
    given (dlt resolves its `[runtime]` settings anew for every `Client`).
    Call it in the thread that uses the session: dlt's sessions are per thread.
    """
    session = (retrying or Client(raise_for_status=False)).session
    adapter = BoundedAdapter(pool_maxsize=4, deadline=deadline)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    retrying_send: Callable[..., Response] = session.send

    def send(request: PreparedRequest, **kwargs: Any) -> Response:
        adapter.asked += 1
        kwargs["allow_redirects"] = False
        return retrying_send(request, **kwargs)

    session.send = send  # type: ignore[method-assign]
    _remember_environment(session)
    return session, adapter


def _remember_environment(session: Session) -> None:
    """Read the proxy and CA-bundle variables (`HTTPS_PROXY`, `NO_PROXY`, `REQUESTS_CA_BUNDLE`...)
    once per host for this session, not at every request, which scans the whole environment twice."""
    merge = session.merge_environment_settings
    known: Dict[Tuple[str, str], Dict[str, Any]] = {}

    def merge_environment_settings(url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> Dict[str, Any]:
        if proxies or stream is not None or verify is not None or cert is not None:
            return merge(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        host = (parts.scheme, parts.netloc)
        if host not in known:
            known[host] = merge(url, {}, None, None, None)
        settings = known[host]
        return {**settings, "proxies": dict(settings["proxies"])}

    session.merge_environment_settings = merge_environment_settings  # type: ignore[method-assign]


class RequestCounter:
    """Logical requests (what the client asked for) and attempts (what went on the wire) of one project."""

    def __init__(self, adapter: BoundedAdapter) -> None:
        self._adapter = adapter
        self._asked, self._sent = adapter.asked, adapter.sent

    @property
    def logical(self) -> int:
        return self._adapter.asked - self._asked

    @property
    def attempts(self) -> int:
        return self._adapter.sent - self._sent

    @property
    def retries(self) -> int:
        return max(0, self.attempts - self.logical)


class ThreadSessions:
    """One session per thread for every project of a run, so the projects a thread fetches one
    after the other share its connections (keep-alive) and dlt's `[runtime]` settings are
    resolved once. A thread fetches one project at a time: `for_project` sets its deadline."""

    def __init__(self, config: Optional[RuntimeConfiguration] = None) -> None:
        self.config = config or resolve_configuration(RuntimeConfiguration())
        self._retrying = Client(
            raise_for_status=False,
            request_timeout=self.config.request_timeout,
            request_max_attempts=self.config.request_max_attempts,
            request_backoff_factor=self.config.request_backoff_factor,
            request_max_retry_delay=self.config.request_max_retry_delay,
        )
        self._local = threading.local()

    def for_project(self, deadline: Optional[float]) -> Tuple[Session, BoundedAdapter]:
        held: Optional[Tuple[Session, BoundedAdapter]] = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = make_session(retrying=self._retrying)
        held[1].deadline = deadline
        return held


IMAGES_SELECTOR = compile_path("images")
TOTAL_COUNT_PATH = compile_path("total_count")
"""JSONPaths compiled once: dlt compiles a path given as text at every page, which costs more
than reading the page."""


def make_rest_client(
    base_url: str, auth: AuthBase, deadline: Optional[float] = None, sessions: Optional[ThreadSessions] = None
) -> tuple[RESTClient, RequestCounter]:
    """A RESTClient on this thread's session of `sessions` (a new ThreadSessions when not given),
    counting its requests; none is sent past `deadline`.

    Call it in the thread that uses the client: dlt's sessions are per thread.
    """
    sessions = sessions or ThreadSessions()
    session, adapter = sessions.for_project(deadline)
    client = RESTClient(
        base_url=base_url, headers=dict(REQUEST_HEADERS), auth=auth, session=session, data_selector=IMAGES_SELECTOR,
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

    @property
    def ids_read(self) -> int:
        """Distinct image ids read in this pass."""
        return len(self._seen)

    def update_state(self, response: Response, data: Optional[List[Any]] = None) -> None:
        total = response.json()["total_count"]
        offset = self.current_value
        steady = not self.totals or self.totals[-1] == total
        self.totals.append(total)
        images = data or []
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
