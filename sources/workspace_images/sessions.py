"""HTTP sessions: dlt's retries within the project's deadline, a time and size limit on each whole answer, no
redirects, one session per thread."""

from __future__ import annotations

import functools
import heapq
import itertools
import re
import socket
import threading
import time
from email.utils import mktime_tz, parsedate_tz
from typing import Any, Iterator, List, Optional, Tuple, Union

from requests import PreparedRequest, RequestException, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ReadTimeout
from tenacity import RetryCallState, Retrying, retry_any, retry_if_exception_type, stop_after_attempt
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager, ProxyManager

from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests import Session
from dlt.sources.helpers.requests.retry import (
    DEFAULT_RETRY_EXCEPTIONS,
    DEFAULT_RETRY_STATUS,
    retry_if_status,
    wait_exponential_retry_after,
)

from .failures import AnswerTooLarge, ProjectTimedOut, failure_text, parse_error_body
from .settings import DEFAULT_MAX_ANSWER_BYTES, READ_CHUNK
from .throttle import Limiters, Pacing


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
        super().connect()  # type: ignore[misc]  # a mixin: urllib3's connection class follows it in the MRO
        _track(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _track(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]  # a mixin, as above


class _TrackedHTTPConnection(_Tracked, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


_TRACKED_POOLS = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


class _TrackedPoolManager(PoolManager):
    """A PoolManager whose connections hand their sockets to the request's watch (the way
    urllib3's own SOCKSProxyManager names its pool classes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = _TRACKED_POOLS


class _TrackedProxyManager(ProxyManager):
    """A ProxyManager (an HTTP or HTTPS proxy) whose connections hand their sockets to the request's watch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = _TRACKED_POOLS


TimeoutArg = Union[None, float, Tuple[Optional[float], Optional[float]]]


def _whole_limit(timeout: TimeoutArg) -> Optional[float]:
    """The bound of a whole request from requests' timeout (a number, or (connect, read))."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        parts = [t for t in timeout if t is not None]
        return max(parts) if parts else None
    return float(timeout)


class _BoundedBody:
    """An answer's body as requests reads it (`Response.raw`), read no further than `limit` bytes
    decoded: past them the connection is closed and AnswerTooLarge raised, so a compressed body
    that inflates to gigabytes is never held whole (urllib3 inflates at most what each read asks
    for). Everything else is the urllib3 response's."""

    def __init__(self, raw: Any, limit: int, http_status: int) -> None:
        self._raw = raw
        self._limit = limit
        self._http_status = http_status

    def stream(self, amt: int = READ_CHUNK, decode_content: Optional[bool] = None) -> Iterator[bytes]:
        read = 0
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            read += len(chunk)
            if read > self._limit:
                self._raw.close()
                self._raw.release_conn()
                raise AnswerTooLarge(self._limit, self._http_status)
            yield chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class BoundedAdapter(HTTPAdapter):
    """Sends requests with a time limit on the whole request and a size limit on its answer,
    and counts them.

    `requests`' timeout only bounds each wait for a byte: a server that sends its
    headers and then drips the body never trips it. Here the timeout (dlt's
    `[runtime] request_timeout`) bounds the whole exchange, connect to last body
    byte, and past `deadline` (the project's budget, `time.monotonic()` based, set by
    ThreadSessions.for_project) no request is sent at all. An answer is read in chunks,
    decoded, and no further than `max_answer_bytes` (AnswerTooLarge). With a limiter in
    `pacing` (the project's account's), each attempt first waits for its turn.
    """

    def __init__(self, *args: Any, max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_answer_bytes = max_answer_bytes
        self.sent = 0
        self.asked = 0
        self.deadline: Optional[float] = None
        self.pacing = Pacing()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        self.pool_args = {"num_pools": connections, "maxsize": maxsize, "block": block}
        self.poolmanager = _TrackedPoolManager(**self.pool_args, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if proxy not in self.proxy_manager and not proxy.lower().startswith("socks"):  # a SOCKS proxy is not tracked
            self.proxy_manager[proxy] = _TrackedProxyManager(
                proxy, proxy_headers=self.proxy_headers(proxy), **self.pool_args, **proxy_kwargs)
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def build_response(self, req: PreparedRequest, resp: Any) -> Response:
        response = super().build_response(req, resp)
        response.raw = _BoundedBody(response.raw, self.max_answer_bytes, response.status_code)
        return response

    def send(  # type: ignore[override]  # HTTPAdapter.send's other arguments pass on through **kwargs
        self, request: PreparedRequest, stream: bool = False, timeout: TimeoutArg = None, **kwargs: Any
    ) -> Response:
        self.pacing.acquire(self.deadline)
        limit = _whole_limit(timeout)
        by_deadline = False  # whether the project's time left is what bounds this request
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise ProjectTimedOut()
            by_deadline = limit is None or left < limit
            limit = left if limit is None else min(limit, left)
            timeout = limit if not isinstance(timeout, tuple) else tuple(
                limit if t is None else min(t, limit) for t in timeout)  # type: ignore[assignment]  # (connect, read), as requests takes it
        if limit is not None and limit <= 0:
            raise ValueError(f"request_timeout must be more than 0 seconds, got {limit:g}")
        self.sent += 1
        watch = _WATCHDOG.watch(limit) if limit is not None else None
        _current.watch = watch
        try:
            response = super().send(request, stream=True, timeout=timeout, **kwargs)
            if not stream:
                response.content  # read (`_BoundedBody`) while the watch is on
        except RequestException:
            if by_deadline and ((watch is not None and watch.fired) or time.monotonic() >= (self.deadline or 0)):
                raise ProjectTimedOut() from None  # cut by the project's deadline: no retry can follow
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


class BoundedSession(Session):
    """A dlt session (its `[runtime]` timeout) with dlt's retries, never waiting past the adapter's
    deadline for one (`before_sleep`), whole-request time limits, answers of at most
    `max_answer_bytes` decoded, and no redirects: a redirected request would carry its
    credentials (token, signature, password) to whatever address the redirect names.

    Its `adapter` counts what is asked (`asked`, one per `send`) and what goes on the wire
    (`sent`, one per attempt). Use it from one thread at a time. With a limiter in the adapter's
    `pacing`, a 429 is none of dlt's retries: `Pacing.send` waits it out within the deadline.
    """

    def __init__(self, config: RuntimeConfiguration, max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES) -> None:
        super().__init__(timeout=config.request_timeout, raise_for_status=False)
        self.adapter = BoundedAdapter(pool_maxsize=4, max_answer_bytes=max_answer_bytes)
        self.mount("http://", self.adapter)
        self.mount("https://", self.adapter)
        # the retry policy of dlt's `Client` (its status codes, exceptions, Retry-After and
        # back-off), with the deadline check before each wait
        self.retrying, self.paced = (Retrying(
            wait=wait_exponential_retry_after(
                multiplier=config.request_backoff_factor, max=config.request_max_retry_delay),
            retry=retry_any(retry_if_status(statuses), retry_if_exception_type(DEFAULT_RETRY_EXCEPTIONS)),
            stop=stop_after_attempt(config.request_max_attempts),
            reraise=True,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            before_sleep=self.before_sleep,
        ) for statuses in (DEFAULT_RETRY_STATUS, [status for status in DEFAULT_RETRY_STATUS if status != 429]))

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:
        """Send `request`, retried as dlt would (429s waited out at the account's pace when paced),
        never following a redirect."""
        self.adapter.asked += 1
        kwargs["allow_redirects"] = False
        if self.adapter.pacing.limiter is not None:
            attempt = functools.partial(super().send, request, **kwargs)
            return self.adapter.pacing.send(lambda: self.paced.copy()(attempt))
        response: Response = self.retrying.copy()(super().send, request, **kwargs)
        return response

    def before_sleep(self, state: RetryCallState) -> None:
        """Before a wait for the next attempt (`Retry-After` or back-off): one that would end
        past the adapter's deadline raises ProjectTimedOut at once, instead of sleeping and then
        finding the time spent."""
        if self.adapter.deadline is None:
            return
        left = self.adapter.deadline - time.monotonic()
        if state.upcoming_sleep < left:
            return
        raise _timed_out(state, left)


def make_session(max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES) -> Tuple[BoundedSession, BoundedAdapter]:
    """A BoundedSession on dlt's `[runtime]` settings (retries, timeout), and its adapter."""
    session = BoundedSession(resolve_configuration(RuntimeConfiguration()), max_answer_bytes)
    return session, session.adapter


def _timed_out(state: RetryCallState, left: float) -> ProjectTimedOut:
    """The ProjectTimedOut of a retry that would wait past the deadline: what the failed attempt
    got and how long the next was to wait (`Retry-After` as the API sent it, it is what it asked)."""
    assert state.outcome is not None  # a retry always follows an attempt
    error = state.outcome.exception()
    response: Optional[Response] = getattr(error, "response", None) if error else state.outcome.result()
    if response is None:
        return ProjectTimedOut(
            f"the retry after {error.__class__.__name__} would wait {state.upcoming_sleep:g}s (back-off)", left)
    after = failure_text(response.status_code, parse_error_body(response)[0], None)
    asked = _retry_after(response.headers.get("Retry-After"))
    if asked is None:
        return ProjectTimedOut(
            f"the retry after {after} would wait {state.upcoming_sleep:g}s (back-off)", left, response.status_code)
    return ProjectTimedOut(
        f"{after} asked to wait {asked:.0f}s (Retry-After) before a retry", left, response.status_code)


def _retry_after(header: Optional[str]) -> Optional[float]:
    """Seconds a `Retry-After` header asks for (a number or an HTTP date, as dlt reads it); None
    when it asks for none."""
    if not header:
        return None
    if re.fullmatch(r"\s*[0-9]+\s*", header):
        seconds = float(header)
    else:
        parsed = parsedate_tz(header)
        if parsed is None:
            return None
        seconds = mktime_tz(parsed) - time.time()
    return seconds if seconds > 0 else None


class RequestCounter:
    """Logical requests (what the client asked for) and attempts (what went on the wire) of one project."""

    def __init__(self, adapter: BoundedAdapter) -> None:
        self._adapter = adapter
        self._asked, self._sent = adapter.asked, adapter.sent
        self.pacing = adapter.pacing.since()
        """The project's 429s and waits for its account's pace (`PacingCounts.throttled`, `.waited`)."""

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
    resolved once. A thread fetches one project at a time: `for_project` sets its deadline and,
    with `limiters`, its account's limiter. No answer is read past `max_answer_bytes`, decoded."""

    def __init__(self, max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES, limiters: Optional[Limiters] = None) -> None:
        self.max_answer_bytes = max_answer_bytes
        self.limiters = limiters
        self.config = resolve_configuration(RuntimeConfiguration())
        self._local = threading.local()

    def for_project(self, deadline: Optional[float],
                    account: Optional[str] = None) -> Tuple[BoundedSession, BoundedAdapter]:
        session: Optional[BoundedSession] = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = BoundedSession(self.config, self.max_answer_bytes)
        session.adapter.deadline = deadline
        session.adapter.pacing.limiter = self.limiters.of(account) if self.limiters is not None and account else None
        return session, session.adapter
