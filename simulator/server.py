"""The :class:`Simulator`: Workspace ``GET /v2/{project_id}/images`` and IAM served on one loopback port.

:class:`Simulator` serves seeded, day-evolving image catalogues for many
projects, with the API's paging, filters, sorting, error bodies and
authentication, and with the faults a client has to survive: throttling with
and without ``Retry-After``, 5xx errors, dropped connections, malformed bodies,
paging that never advances, a lying ``total_count``, answers that drip one byte
at a time or never come, slow projects, redirects to other hosts, and data that
changes while a project is being paged, and the gateway's flow control (a
token bucket per account, 429 ``APIGW.0308`` over it). The same port serves the IAM calls a
client makes before it reads images: ``POST /v3/auth/tokens``,
``GET /v3/auth/projects`` and ``GET /v3/projects``.

This module composes the parts and holds the lifecycle, the record of requests
and the redirects: the identity side (:mod:`simulator.iam`, composing
:mod:`simulator.accounts`, :mod:`simulator.tokens`, :mod:`simulator.gateway`
and :mod:`simulator.listings`), the projects and the
knobs that change them (:mod:`simulator.workspace`, whose methods the
simulator passes on), the answers (:func:`simulator.api.answer`, a function of
those two and the request) the flow control (:mod:`simulator.throttle`), and the HTTP layer (:mod:`simulator.httpd`, given
that function to call). The fault kinds are :mod:`simulator.faults`', AK/SK
:mod:`simulator.signing`'s, the image catalogues :mod:`simulator.data`'s.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from . import api
from .data import DEFAULT_REGIONS, Image
from .faults import Redirect, Redirects
from .httpd import POLL_INTERVAL, HttpServer, Request, RequestRecord, Response, pause
from .iam import IdentityStore
from .identity import DEFAULT_ACCESS_KEY, DEFAULT_DOMAIN, DEFAULT_PASSWORD, DEFAULT_SECRET_KEY, DEFAULT_USER
from .projects import SimProject
from .throttle import RateLimit, RateLimits
from .tokens import DEFAULT_TOKEN_TTL
from .workspace import Workspace

LOGGER = logging.getLogger("workspace_images.simulator")


class Simulator:
    """A Workspace images API on ``127.0.0.1``, serving seeded projects.

    Args:
        projects: How many projects to create.
        images: How many images each project has on day 0.
        seed: Seed of every random choice: project IDs, data, faults.
        day: The simulated day to start on.
        latency_ms: Milliseconds every request waits before it is answered.
        fault_rate: Probability (0..1) that an images request fails with one
            of ``fault_kinds`` (see :data:`RANDOM_FAULTS`).
        token: A fixed ``X-Auth-Token`` that never expires, valid for every
            project of the default account (Workspace and IAM listings).
        start_date: The date of day 0.
        regions: Regions to spread the projects over (round robin); default
            :data:`~simulator.data.DEFAULT_REGIONS`.
        host: Address to listen on.
        port: Port to listen on; 0 picks a free one.
        access_key: The default account's AK (default ``SIMACCESSKEY0000000001``).
        secret_key: The default account's SK (default
            ``SimSecretKey0000000000000000000000000001``).
        user: The default account's IAM user (default ``sim-user``).
        password: That user's password (default ``sim-password``).
        domain: The default account's name (default ``sim-domain``); the
            constructor's projects belong to it.
        token_ttl: Lifetime in seconds of tokens issued by ``POST /v3/auth/tokens``.
        rate_limit: Workspace requests a second each account may send
            (the gateway's flow control, see :meth:`set_rate_limit`); None:
            no limit.
        burst: Requests a full bucket lets through at once; default the
            whole part of ``rate_limit``, at least 1.
        retry_after: Whether a throttled answer carries ``Retry-After``.

    Its projects, their data, faults and hooks are a :class:`~simulator.workspace.Workspace`'s
    (``workspace``), whose methods it passes on.

    Attributes:
        extra_fields: Keys added to every served image that lacks them, to
            simulate fields the API adds later.
        fault_kinds: Names in :data:`RANDOM_FAULTS` that ``fault_rate`` picks from.
        requests: Every request answered, IAM calls included, in order (no
            header or body is kept, so no secret either).
        iam: The identity side (:class:`~simulator.iam.IdentityStore`):
            accounts, IAM's view of the projects, tokens, keys, the fixed
            token and the clock; tests call it directly.
        workspace: The Workspace side (:class:`~simulator.workspace.Workspace`):
            projects, their data, faults and hooks.
        throttle: The flow control (:class:`~simulator.throttle.RateLimits`):
            the limit of each account, its bucket and its counts.
        access_key: The default account's AK; ``secret_key``, ``user``,
            ``password`` and ``domain`` likewise.
    """

    def __init__(
        self,
        projects: int = 3,
        images: int = 120,
        seed: int = 7,
        day: int = 0,
        latency_ms: float = 0,
        fault_rate: float = 0.0,
        token: str = "sim-token",
        start_date: dt.date = dt.date(2026, 11, 1),
        regions: list[str] | tuple[str, ...] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_key: str | None = None,
        secret_key: str | None = None,
        user: str | None = None,
        password: str | None = None,
        domain: str | None = None,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        rate_limit: float | None = None,
        burst: int | None = None,
        retry_after: bool = True,
    ) -> None:
        if projects < 0 or images < 0 or day < 0 or latency_ms < 0:
            raise ValueError("projects, images, day and latency_ms must be >= 0")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate}")
        self.regions = list(regions) if regions is not None else list(DEFAULT_REGIONS)
        if not self.regions:
            raise ValueError("regions must not be empty")
        self._lock = threading.RLock()
        self.throttle = RateLimits(self._lock, RateLimit.of(rate_limit, burst, retry_after))
        self.iam = IdentityStore(seed, self._lock, token_ttl, token)
        self.latency_ms = latency_ms
        self.host = host
        self.port = port
        self.requests: list[RequestRecord] = []
        self._redirects = Redirects(self._lock)
        self._server: HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        default = self.iam.add_account(
            domain or DEFAULT_DOMAIN,
            user=user or DEFAULT_USER,
            password=password or DEFAULT_PASSWORD,
            access_key=access_key or DEFAULT_ACCESS_KEY,
            secret_key=secret_key or DEFAULT_SECRET_KEY,
        )
        self.domain = default.domain
        self.user = default.user
        self.password = default.password
        self.access_key = default.access_key
        self.secret_key = default.secret_key
        self.workspace = Workspace(self.iam, self._lock, seed=seed, day=day, fault_rate=fault_rate,
                                   start_date=start_date, regions=self.regions, projects=projects, images=images)
        self._built = True

    def __setattr__(self, name: str, value: object) -> None:
        # a knob that is not the simulator's (e.g. `token_ttl`, which is `sim.iam`'s) would be set and never read
        if name not in self.__dict__ and self.__dict__.get("_built") and not hasattr(type(self), name):
            where = " (the identity side's knobs are on sim.iam)" if hasattr(self.iam, name) else ""
            raise AttributeError(f"Simulator has no setting {name!r}{where}")
        super().__setattr__(name, value)

    def __enter__(self) -> Simulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"Simulator({where}, projects={len(self.projects)}, seed={self.seed}, day={self.day})"

    # lifecycle

    def start(self) -> Simulator:
        """Start serving on a daemon thread.

        Returns:
            The simulator itself.
        """
        if self._server is not None:
            raise RuntimeError("the simulator is already started")
        self._stopping.clear()
        self._server = HttpServer((self.host, self.port), self._answer, self._stopping)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name="workspace-simulator",
            daemon=True,
        )
        self._thread.start()
        LOGGER.info("simulator serving %d projects on %s (seed %s, day %d)",
                    len(self.projects), self.url, self.seed, self.day)
        return self

    def stop(self) -> None:
        """Stop serving and close open connections. Safe to call twice.

        Answers being delayed, dripped or held back (``slow``, ``drip``,
        ``silent``, ``latency_ms``) are cut short: their connections close.
        """
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join()
        self._server = None
        self._thread = None
        LOGGER.info("simulator stopped")

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return self._server.url

    @property
    def open_connections(self) -> int:
        """How many client connections are open now (0 when not started).

        Tests use it to check that a client closes the connections it gives
        up on, e.g. one held open by a ``silent`` fault.
        """
        return self._server.connection_count() if self._server is not None else 0

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the simulator stops first; return False when it stopped."""
        return pause(self._stopping, seconds)

    # the Workspace side, passed on to `workspace` (the arguments are documented there)

    @property
    def projects(self) -> list[SimProject]:
        """The projects, in the order they were created."""
        return self.workspace.projects

    @property
    def day(self) -> int:
        """The current simulated day."""
        return self.workspace.day

    @property
    def seed(self) -> int:
        """Seed of every random choice: project IDs, data, faults."""
        return self.workspace.seed

    @property
    def start_date(self) -> dt.date:
        """The date of day 0."""
        return self.workspace.start_date

    @property
    def fault_rate(self) -> float:
        """Probability (0..1) that an images request fails with one of ``fault_kinds``."""
        return self.workspace.fault_rate

    @fault_rate.setter
    def fault_rate(self, rate: float) -> None:
        self.workspace.fault_rate = rate

    @property
    def extra_fields(self) -> dict[str, Any]:
        """Keys added to every served image that lacks them, to simulate fields the API adds later."""
        return self.workspace.extra_fields

    @extra_fields.setter
    def extra_fields(self, fields: dict[str, Any]) -> None:
        self.workspace.extra_fields = fields

    @property
    def fault_kinds(self) -> tuple[str, ...]:
        """Names in :data:`RANDOM_FAULTS` that ``fault_rate`` picks from."""
        return self.workspace.fault_kinds

    @fault_kinds.setter
    def fault_kinds(self, kinds: tuple[str, ...]) -> None:
        self.workspace.fault_kinds = kinds

    def as_of(self, d: int | None = None) -> dt.datetime:
        """Noon UTC of a simulated day (the current one when None): :meth:`Workspace.as_of`."""
        return self.workspace.as_of(d)

    def add_project(self, region: str = "cn-north-4", images: int = 101, project_id: str | None = None,
                    account: str | None = None, name: str | None = None, enabled: bool = True) -> SimProject:
        """Add a project with exactly ``images`` images on the current day: :meth:`Workspace.add_project`."""
        return self.workspace.add_project(region, images, project_id, account, name, enabled)

    def projects_of(self, domain: str | None = None) -> list[SimProject]:
        """The Workspace projects of one account (the default one when None): :meth:`Workspace.projects_of`."""
        return self.workspace.projects_of(domain)

    def set_day(self, d: int) -> None:
        """Switch every project to simulated day ``d``; live mutations are lost: :meth:`Workspace.set_day`."""
        self.workspace.set_day(d)

    def images(self, project_id: str) -> list[Image]:
        """A project's live images as the API serialises them: :meth:`Workspace.images`."""
        return self.workspace.images(project_id)

    def withdraw(self, project_id: str, image_id: str) -> None:
        """Remove an image from a project's live data: :meth:`Workspace.withdraw`."""
        self.workspace.withdraw(project_id, image_id)

    def publish(self, project_id: str, image: dict[str, Any] | None = None) -> Image:
        """Add an image to a project's live data, returning a copy: :meth:`Workspace.publish`."""
        return self.workspace.publish(project_id, image)

    def modify(self, project_id: str, image_id: str, **fields: Any) -> Image:
        """Change fields of a live image, returning a copy: :meth:`Workspace.modify`."""
        return self.workspace.modify(project_id, image_id, **fields)

    def fail_project(self, project_id: str, kind: str, *, status: int | None = None,
                     error_code: str | None = None, error_msg: str | None = None, times: int | None = None,
                     retry_after: int | None = 1, total: int | None = None, interval: float | None = None,
                     size: int | None = None) -> None:
        """Make a project's images requests fail, until :meth:`clear_faults`: :meth:`Workspace.fail_project`.

        The kinds, and what each answers, are listed at :func:`~simulator.faults.project_fault`.
        """
        self.workspace.fail_project(project_id, kind, status=status, error_code=error_code, error_msg=error_msg,
                                    times=times, retry_after=retry_after, total=total, interval=interval,
                                    size=size)

    def clear_faults(self, project_id: str | None = None) -> None:
        """Remove the faults of one project, or of all when None: :meth:`Workspace.clear_faults`."""
        self.workspace.clear_faults(project_id)

    def on_request(self, project_id: str, fn: Callable[[Simulator, str, int], Any] | None) -> None:
        """Call ``fn(sim, project_id, request_number)`` after each images request of a project; None removes it.

        It runs under the simulator's lock once the answer is built and before
        it is sent, for every request that passed authentication and flow
        control (faults included); ``request_number`` counts them from 1.
        """
        if fn is None:
            self.workspace.on_request(project_id, None)
            return
        call = fn
        self.workspace.on_request(project_id, lambda project, number: call(self, project, number))

    # requests

    def _answer(self, request: Request) -> Response:
        """The HTTP layer's handler: wait ``latency_ms``, answer, record."""
        if self.latency_ms:
            self._pause(self.latency_ms / 1000)
        answer = api.answer(request, self.workspace, self.iam, self._redirects, self._pause,
                            self.throttle)
        record = RequestRecord(request.method, urlsplit(request.target).path, answer.query,
                               answer.response.status, answer.project_id)
        with self._lock:
            self.requests.append(record)
        return answer.response

    def iam_calls(self, path_prefix: str = api.TOKENS_PATH, status: int | None = None) -> int:
        """Count the recorded requests whose path starts with a prefix.

        Args:
            path_prefix: E.g. ``/v3/auth/tokens`` (token requests), ``/v3``
                (every IAM call).
            status: Count only answers with this status.

        Returns:
            The count.
        """
        with self._lock:
            return sum(1 for r in self.requests
                       if r.path.startswith(path_prefix) and (status is None or r.status == status))

    def redirect(self, path_prefix: str, location: str, status: int = 307, times: int | None = None) -> None:
        """Answer requests whose path starts with a prefix with a redirect, until :meth:`clear_redirects`.

        Any request, IAM or Workspace, with any method, whose path (without the
        query, as sent: percent-encoded) starts with ``path_prefix`` is
        answered before authentication with ``status``, a ``Location:
        {location}`` header and the body ``{}``. Redirects apply in the order
        added; the first active one that matches wins. Tests point
        ``location`` at another host (see ``tests/recorder.py``) to check that
        no credential follows the redirect.

        Args:
            path_prefix: E.g. ``/v3/auth/tokens``, ``/v2/`` or ``/`` (everything).
            location: The ``Location`` header, verbatim.
            status: A 3xx status.
            times: How many requests to redirect; None means until cleared.

        Raises:
            ValueError: ``path_prefix`` does not start with ``/``, ``status``
                is not 3xx, ``location`` holds a line break, or ``times`` < 1.
        """
        self._redirects.add(Redirect(path_prefix, location, status, times))

    def clear_redirects(self) -> None:
        """Remove every redirect added with :meth:`redirect`."""
        self._redirects.clear()

    # the gateway's flow control: see simulator.throttle

    def set_rate_limit(self, rate: float | None, burst: int | None = None, retry_after: bool = True,
                       account: str | None = None) -> None:
        """Limit the Workspace requests of every account (``account`` None) or of one: :meth:`RateLimits.set`.

        ``rate`` is requests a second (None: no limit), ``burst`` the tokens a
        full bucket holds (default the whole part of ``rate``, at least 1),
        ``retry_after`` whether a 429 carries ``Retry-After``. What counts as an
        account, the order with authentication and the answers are described at
        :mod:`simulator.throttle`.

        Raises:
            ValueError: ``rate`` not a finite number > 0, ``burst`` not an
                integer >= 1, or a ``burst`` without a ``rate``.
        """
        self.throttle.set(RateLimit.of(rate, burst, retry_after), account)

    def rate_limit(self, account: str | None = None) -> RateLimit | None:
        """The limit an account follows (every account's without one of its own when None): :meth:`RateLimits.limit`."""
        return self.throttle.limit(account)

    def rate_stats(self) -> dict[str, dict[str, int]]:
        """``{domain: {"allowed": n, "throttled": m}}`` since the last reset: :meth:`RateLimits.stats`."""
        return self.throttle.stats()

    def throttled(self, domain: str | None = None) -> int:
        """Workspace requests throttled since the last reset, of one account or of all when None."""
        stats = self.throttle.stats()
        if domain is not None:
            return stats.get(domain, {}).get("throttled", 0)
        return sum(counts["throttled"] for counts in stats.values())

    def reset_rate_stats(self) -> None:
        """Set the counts of :meth:`rate_stats` and :meth:`throttled` to 0 (the buckets keep their tokens)."""
        self.throttle.reset_stats()
