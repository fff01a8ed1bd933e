"""A local HTTP stand-in for Huawei Cloud Workspace ``GET /v2/{project_id}/images`` and IAM.

:class:`Simulator` serves seeded, day-evolving image catalogues for many
projects on one loopback port, with the API's paging, filters, sorting, error
bodies and authentication, and with the faults a client has to survive:
throttling with and without ``Retry-After``, 5xx errors, dropped connections,
malformed bodies, paging that never advances, a lying ``total_count``, answers
that drip one byte at a time or never come, slow projects, redirects to other
hosts, and data that changes while a project is being paged.

The same port serves the IAM calls a client makes before it reads images
(see :mod:`simulator.iam`): ``POST /v3/auth/tokens`` (password tokens),
``GET /v3/auth/projects`` (token) and ``GET /v3/projects`` (token or AK/SK).
Workspace requests authenticate with ``X-Auth-Token`` (the fixed token or an
issued one) or with an ``SDK-HMAC-SHA256`` signature (see
:mod:`simulator.signing`).

The HTTP layer is :mod:`simulator.httpd`, the fault kinds :mod:`simulator.faults`, the
image catalogues :mod:`simulator.data`.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import math
import random
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

from .data import (
    DEFAULT_REGIONS,
    Image,
    ProjectHistory,
    new_image,
    project_id_for,
    sort_images,
)
from .faults import (
    DRIP_KINDS,
    PROJECT_FAULT_KINDS,
    RANDOM_FAULTS,
    STATUS_ERRORS,
    Fault,
    _default_error,
    _ProjectFault,
    _Redirect,
)
from .httpd import POLL_INTERVAL, RequestRecord, _BadRequest, _Response, _Server
from .iam import IdentityStore
from .identity import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_DOMAIN,
    DEFAULT_PASSWORD,
    DEFAULT_SECRET_KEY,
    DEFAULT_USER,
    AuthError,
)
from .tokens import DEFAULT_TOKEN_TTL

LOGGER = logging.getLogger("workspace_images.simulator")

IMAGES_PATH = re.compile(r"^/v2/(?P<project_id>[^/]+)/images$")
TOKENS_PATH = "/v3/auth/tokens"
AUTH_PROJECTS_PATH = "/v3/auth/projects"
PROJECTS_PATH = "/v3/projects"
IAM_METHODS = {TOKENS_PATH: "POST", AUTH_PROJECTS_PATH: "GET", PROJECTS_PATH: "GET"}
"""The IAM paths served, with the one method each accepts."""
WORKSPACE_GATEWAY = "APIG."
IAM_GATEWAY = "APIGW."
"""Prefixes of gateway error codes: Workspace answers ``APIG.``, IAM's gateway ``APIGW.``."""
MAX_LIMIT = 100
MAX_OFFSET = 2**31 - 1
FILTER_FIELDS = {
    "os_type": "os_type",
    "image_type": "image_type",
    "platform": "os_type",
    "architecture": "architecture",
    "package_type": "package_type",
    "image_id": "id",
}
"""Query parameter -> the image field it matches exactly.

An image without the field passes the filter: ImageInfo has no package_type,
so ``package_type`` filters only once ``extra_fields`` or live data add one.
"""
KEYSTONE_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                   405: "Method Not Allowed"}
SORT_FIELDS = ("name", "created_at")
SORT_TYPES = ("asc", "desc")
JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
DEFAULT_DRIP_INTERVAL = 0.2
"""Seconds between two bytes of a ``drip`` or ``drip_headers`` answer."""


@dataclass(frozen=True)
class SimProject:
    """A project the simulator serves.

    Attributes:
        region: Region id, e.g. ``cn-north-4``.
        project_id: 32 lowercase hex digits.
        name: The IAM project name: the region id, or ``{region}_{suffix}``
            for further projects in the same region.
    """

    region: str
    project_id: str
    name: str


@dataclass
class _ProjectState:
    project: SimProject
    history: ProjectHistory
    added_day: int
    live: list[Image]
    faults: list[_ProjectFault] = field(default_factory=list)
    hook: Callable[[Simulator, str, int], Any] | None = None
    requests: int = 0


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

    Attributes:
        extra_fields: Keys added to every served image that lacks them, to
            simulate fields the API adds later.
        fault_kinds: Names in :data:`RANDOM_FAULTS` that ``fault_rate`` picks from.
        requests: Every request answered, IAM calls included, in order (no
            header or body is kept, so no secret either).
        iam: The identity side (:class:`~simulator.iam.IdentityStore`):
            accounts, IAM's view of the projects, tokens, keys, the fixed
            token and the clock; tests call it directly.
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
    ) -> None:
        if projects < 0 or images < 0 or day < 0 or latency_ms < 0:
            raise ValueError("projects, images, day and latency_ms must be >= 0")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be between 0 and 1, got {fault_rate}")
        self.regions = list(regions) if regions is not None else list(DEFAULT_REGIONS)
        if not self.regions:
            raise ValueError("regions must not be empty")
        self.seed = seed
        self.latency_ms = latency_ms
        self.fault_rate = fault_rate
        self.start_date = start_date
        self.host = host
        self.port = port
        self.extra_fields: dict[str, Any] = {}
        self.fault_kinds: tuple[str, ...] = tuple(RANDOM_FAULTS)
        self.requests: list[RequestRecord] = []
        self._day = day
        self._lock = threading.RLock()
        self._fault_rng = random.Random(f"{seed}:faults")
        self._mutation_rng = random.Random(f"{seed}:mutations")
        self._states: dict[str, _ProjectState] = {}
        self._redirects: list[_Redirect] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.iam = IdentityStore(seed, self._lock, token_ttl, token)
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
        for index in range(projects):
            self._add(self.regions[index % len(self.regions)], images, project_id_for(seed, index), added_day=0)

    def __enter__(self) -> Simulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"Simulator({where}, projects={len(self._states)}, seed={self.seed}, day={self._day})"

    # lifecycle

    def start(self) -> Simulator:
        """Start serving on a daemon thread.

        Returns:
            The simulator itself.
        """
        if self._server is not None:
            raise RuntimeError("the simulator is already started")
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name="workspace-simulator",
            daemon=True,
        )
        self._thread.start()
        LOGGER.info("simulator serving %d projects on %s (seed %s, day %d)",
                    len(self._states), self.url, self.seed, self._day)
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
        return f"http://{self._server.server_name}:{self._server.server_port}"

    @property
    def open_connections(self) -> int:
        """How many client connections are open now (0 when not started).

        Tests use it to check that a client closes the connections it gives
        up on, e.g. one held open by a ``silent`` fault.
        """
        return self._server.connection_count() if self._server is not None else 0

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the simulator stops first; return False when it stopped."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    # projects and data

    @property
    def projects(self) -> list[SimProject]:
        """The projects, in the order they were created."""
        with self._lock:
            return [state.project for state in self._states.values()]

    @property
    def day(self) -> int:
        """The current simulated day."""
        return self._day

    def as_of(self, d: int | None = None) -> dt.datetime:
        """Return noon UTC of a simulated day.

        Images published on a day are created before noon, so this is a
        validity timestamp that covers everything served on that day.

        Args:
            d: The day; the current day when None.

        Returns:
            ``start_date + d`` at 12:00 UTC.
        """
        day = self._day if d is None else d
        return dt.datetime.combine(self.start_date + dt.timedelta(days=day), dt.time(12), tzinfo=dt.timezone.utc)

    def add_project(
        self,
        region: str = "cn-north-4",
        images: int = 101,
        project_id: str | None = None,
        account: str | None = None,
        name: str | None = None,
        enabled: bool = True,
    ) -> SimProject:
        """Add a project with exactly ``images`` images on the current day.

        Its data evolves from its own seed when :meth:`set_day` moves to a later
        day (its day 0 is the day it was added; earlier days serve that set too).

        Args:
            region: Region id.
            images: Number of images now (0 allowed).
            project_id: Its ID; generated from the seed when None.
            account: The domain name of the account it belongs to; the
                default account when None.
            name: Its IAM name: ``region`` or ``{region}_{suffix}`` (a
                sub-project, e.g. ``cn-north-4_finance``); when None, the
                region for the account's first project there, else
                ``{region}_teamN``.
            enabled: Whether IAM lists it as enabled; a disabled project
                refuses Workspace calls with 403 ``APIG.0302``.

        Returns:
            The new project.
        """
        with self._lock:
            index = len(self._states)
            project_id = project_id or project_id_for(self.seed, index)
            if project_id in self._states or self.iam.project(project_id) is not None:
                raise ValueError(f"project {project_id} already exists")
            return self._add(region, images, project_id, added_day=self._day, account=account, name=name,
                             enabled=enabled)

    def _add(
        self,
        region: str,
        images: int,
        project_id: str,
        added_day: int,
        account: str | None = None,
        name: str | None = None,
        enabled: bool = True,
    ) -> SimProject:
        index = len(self._states)
        domain = self.iam.account(account).domain
        name = self.iam.project_name(region, domain, name)
        project = SimProject(region=region, project_id=project_id, name=name)
        history = ProjectHistory(self.seed, index, images, self.start_date + dt.timedelta(days=added_day))
        state = _ProjectState(project, history, added_day, live=[])
        state.live = self._day_images(state, self._day)
        self.iam.register_project(project_id, name, domain, region, enabled)
        self._states[project_id] = state
        return project

    def projects_of(self, domain: str | None = None) -> list[SimProject]:
        """Return the Workspace projects of one account (``MOS`` is not one).

        Args:
            domain: The account; the default one when None.

        Returns:
            Its projects, in the order they were created.
        """
        with self._lock:
            wanted = self.iam.account(domain).domain
            return [state.project for state in self._states.values()
                    if self.iam.project(state.project.project_id).domain == wanted]

    def iam_calls(self, path_prefix: str = TOKENS_PATH, status: int | None = None) -> int:
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

    @staticmethod
    def _day_images(state: _ProjectState, day: int) -> list[Image]:
        return state.history.day(max(0, day - state.added_day))

    def set_day(self, d: int) -> None:
        """Switch every project to simulated day ``d``; live mutations are lost.

        Args:
            d: The day (0 or later).
        """
        if d < 0:
            raise ValueError(f"day must be >= 0, got {d}")
        with self._lock:
            for state in self._states.values():
                state.live = self._day_images(state, d)
            self._day = d
        LOGGER.info("simulator switched to day %d (%s)", d, self.start_date + dt.timedelta(days=d))

    def images(self, project_id: str) -> list[Image]:
        """Return a project's live images as the API serialises them, in its default order.

        Args:
            project_id: The project.

        Returns:
            Deep copies, sorted by name then id.
        """
        with self._lock:
            return [copy.deepcopy(self._serialise(image)) for image in sort_images(self._state(project_id).live)]

    def _state(self, project_id: str) -> _ProjectState:
        try:
            return self._states[project_id]
        except KeyError:
            raise KeyError(f"unknown project {project_id}") from None

    def _find(self, state: _ProjectState, image_id: str) -> int:
        for i, image in enumerate(state.live):
            if image["id"] == image_id:
                return i
        raise KeyError(f"project {state.project.project_id} has no image {image_id}")

    def withdraw(self, project_id: str, image_id: str) -> None:
        """Remove an image from a project's live data.

        Args:
            project_id: The project.
            image_id: The image.
        """
        with self._lock:
            state = self._state(project_id)
            del state.live[self._find(state, image_id)]

    def publish(self, project_id: str, image: dict[str, Any] | None = None) -> Image:
        """Add an image to a project's live data.

        Any JSON-able names and values are stored and served verbatim, in
        their order: ``""`` as a name, ``osType`` beside ``os_type``, integers
        beyond 64 bits, nested objects, odd ``created_at`` strings, strings
        with a lone surrogate (served as a ``\\ud800`` escape).

        Args:
            project_id: The project.
            image: Fields of the image; missing ones (``id`` included) are
                generated, ``created_at`` on the current simulated day.

        Returns:
            A copy of the stored image.
        """
        with self._lock:
            state = self._state(project_id)
            taken = {existing["name"] for existing in state.live if isinstance(existing.get("name"), str)}
            created_on = self.start_date + dt.timedelta(days=self._day)
            stored = new_image(self._mutation_rng, created_on, taken)
            stored.update(copy.deepcopy(image or {}))
            if any(existing["id"] == stored["id"] for existing in state.live):
                raise ValueError(f"project {project_id} already has image {stored['id']}")
            state.live.append(stored)
            return copy.deepcopy(stored)

    def modify(self, project_id: str, image_id: str, **fields: Any) -> Image:
        """Change fields of a live image.

        Like :meth:`publish`, any JSON-able names and values are served
        verbatim (pass odd names as ``**{"": 1}``).

        Args:
            project_id: The project.
            image_id: The image.
            **fields: New values.

        Returns:
            A copy of the changed image.
        """
        with self._lock:
            state = self._state(project_id)
            image = state.live[self._find(state, image_id)]
            image.update(copy.deepcopy(fields))
            return copy.deepcopy(image)

    # faults and hooks

    def fail_project(
        self,
        project_id: str,
        kind: str,
        *,
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        times: int | None = None,
        retry_after: int | None = 1,
        total: int | None = None,
        interval: float | None = None,
    ) -> None:
        """Make a project's images requests fail, until :meth:`clear_faults`.

        Faults apply in the order added; the first active one that answers
        with an error (or, for ``silent``, does not answer) wins. Kinds:

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
        - any name in :data:`RANDOM_FAULTS`: that fault.

        ``drip`` and ``drip_headers`` deliver whatever the answer is, error
        faults included. Every kind but ``flaky`` and ``retry_after`` lasts
        until cleared unless ``times`` is given. Requests held by ``silent``,
        ``drip`` or ``slow`` end when :meth:`stop` is called.

        Args:
            project_id: The project.
            kind: One of :data:`PROJECT_FAULT_KINDS`.
            status: HTTP status of ``status`` and ``flaky``.
            error_code: Overrides the body's error_code.
            error_msg: Overrides the body's error_msg.
            times: How many requests fail; None means until cleared
                (``flaky`` and ``retry_after`` default to 1).
            retry_after: Seconds in ``Retry-After`` (``retry_after`` kind, or any
                429); None sends no header.
            total: The ``total_count`` to serve; required for ``total_count``,
                refused for other kinds.
            interval: Seconds between two bytes (``drip``, ``drip_headers``;
                default :data:`DEFAULT_DRIP_INTERVAL`) or the delay of each
                request (``slow``, required); refused for other kinds.

        Raises:
            ValueError: An unknown kind, or ``total`` or ``interval`` missing,
                invalid or given to a kind that does not use it.
            KeyError: An unknown project.
        """
        if kind not in PROJECT_FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(PROJECT_FAULT_KINDS)}")
        if kind == "total_count":
            if isinstance(total, bool) or not isinstance(total, int):
                raise ValueError(f"the total_count fault needs an integer total, got {total!r}")
        elif total is not None:
            raise ValueError(f"total applies only to the total_count fault, not to {kind!r}")
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
        elif kind in RANDOM_FAULTS:
            fault = RANDOM_FAULTS[kind]
            if not fault.drop and (error_code or error_msg):
                fault = Fault(fault.status, error_code or fault.error_code, error_msg or fault.error_msg,
                              fault.retry_after)
        else:
            fault = None
        with self._lock:
            self._state(project_id).faults.append(
                _ProjectFault(kind, fault, times, total=total, interval=float(interval or 0.0)))

    def clear_faults(self, project_id: str | None = None) -> None:
        """Remove the faults of one project, or of all when None.

        Args:
            project_id: The project, or None for all.
        """
        with self._lock:
            states = [self._state(project_id)] if project_id else list(self._states.values())
            for state in states:
                state.faults.clear()

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
        if not path_prefix.startswith("/"):
            raise ValueError(f"path_prefix must start with '/', got {path_prefix!r}")
        if not 300 <= status <= 399:
            raise ValueError(f"a redirect needs a 3xx status, got {status}")
        if "\r" in location or "\n" in location:
            raise ValueError("location must not contain a line break")
        if times is not None and times < 1:
            raise ValueError(f"times must be None or >= 1, got {times}")
        with self._lock:
            self._redirects.append(_Redirect(path_prefix, location, status, times))

    def clear_redirects(self) -> None:
        """Remove every redirect added with :meth:`redirect`."""
        with self._lock:
            self._redirects.clear()

    def on_request(self, project_id: str, fn: Callable[[Simulator, str, int], Any] | None) -> None:
        """Call ``fn(sim, project_id, request_number)`` after each images request of a project.

        It runs under the simulator's lock once the answer is built and before
        it is sent, for every request that passed authentication (faults
        included); ``request_number`` counts them from 1. None removes it.

        Args:
            project_id: The project.
            fn: The hook, or None.
        """
        with self._lock:
            self._state(project_id).hook = fn

    # request handling

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _authenticate(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes, project_id: str
    ) -> AuthError | None:
        """Return why a request may not read a project's images, or None when it may.

        ``X-Auth-Token`` wins when present (the fixed token, or one issued by
        ``POST /v3/auth/tokens``); otherwise an ``SDK-HMAC-SHA256`` signature is
        verified. See :mod:`simulator.iam` for every refusal.
        """
        parts = urlsplit(target)
        try:
            self.iam.authorize_workspace(method, parts.path, parts.query, headers, body, project_id)
        except AuthError as refusal:
            return refusal
        return None

    def _handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[_Response, str | None, dict[str, str]]:
        if self.latency_ms:
            self._pause(self.latency_ms / 1000)
        parts = urlsplit(target)
        query = {name: values[0] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
        match = IMAGES_PATH.match(parts.path)
        project_id = unquote(match["project_id"]) if match is not None else None
        redirect = self._take_redirect(parts.path)
        if redirect is not None:
            return redirect, project_id, query
        if parts.path in IAM_METHODS:
            return self._handle_iam(method, parts.path, parts.query, query, headers, body), None, query
        if project_id is None:
            return self._error(404, *STATUS_ERRORS[404]), None, query
        if method != "GET":
            response = self._error(405, "WKS.0405", f"The method {method} is not allowed for {parts.path}.")
            response.headers["Allow"] = "GET"
            return response, project_id, query
        if not self._pause(self._slow_delay(project_id)):
            return _Response(None), project_id, query
        with self._lock:
            refusal = self._authenticate(method, target, headers, body, project_id)
            if refusal is not None:
                LOGGER.debug("refused an images request for %s: %s", project_id, refusal.message)
                return self._refusal(refusal, WORKSPACE_GATEWAY), project_id, query
            state = self._states.get(project_id)
            if state is None:
                return self._error(404, *STATUS_ERRORS[404]), project_id, query
            state.requests += 1
            response = self._answer(state, query)
            if response.status is not None:
                self._set_delivery(state, response)
            if state.hook is not None:
                try:
                    state.hook(self, project_id, state.requests)
                except Exception:
                    LOGGER.exception("on_request hook of project %s failed", project_id)
        return response, project_id, query

    def _take_redirect(self, path: str) -> _Response | None:
        with self._lock:
            redirect = next((r for r in self._redirects if r.active() and path.startswith(r.path_prefix)), None)
            if redirect is None:
                return None
            if redirect.times is not None:
                redirect.times -= 1
        response = _Response(redirect.status, b"{}", self._headers())
        response.headers["Location"] = redirect.location
        return response

    def _slow_delay(self, project_id: str) -> float:
        with self._lock:
            state = self._states.get(project_id)
            slow = self._take(state, "slow") if state is not None else None
            return slow.interval if slow is not None else 0.0

    def _set_delivery(self, state: _ProjectState, response: _Response) -> None:
        for fault in state.faults:
            if fault.kind in DRIP_KINDS and fault.active():
                fault.consume()
                response.delivery = fault.kind
                response.interval = fault.interval
                return

    def _handle_iam(
        self,
        method: str,
        path: str,
        raw_query: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> _Response:
        response = self._answer_iam(method, path, raw_query, query, headers, body)
        response.headers["X-IAM-Trace-Id"] = response.headers["X-Request-Id"]
        return response

    def _answer_iam(
        self,
        method: str,
        path: str,
        raw_query: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> _Response:
        allowed = IAM_METHODS[path]
        if method != allowed:
            response = self._keystone_error(405, f"The method {method} is not allowed for {path}.")
            response.headers["Allow"] = allowed
            return response
        try:
            if path == TOKENS_PATH:
                catalog = query.get("nocatalog", "").lower() not in ("true", "1")
                token, answer = self.iam.issue_token(body, catalog=catalog)
                response = self._json(201, answer)
                response.headers["X-Subject-Token"] = token
                return response
            caller = self.iam.authorize_iam(method, path, raw_query, headers, body,
                                            allow_signature=path == PROJECTS_PATH)
            filters = query if path == PROJECTS_PATH else {}
            per_page, first_next = self.iam.listing_paging
            if per_page is None:
                projects = self.iam.listing(caller.account.domain, self.url, filters)
            else:
                paging = {k: v for k, v in query.items() if k in ("page", "per_page")}
                projects, page, size, more = self.iam.listing_page(caller.account.domain, self.url,
                                                                   {**filters, **paging})
        except AuthError as refusal:
            LOGGER.debug("IAM refused %s %s: %s", method, path, refusal.message)
            return self._refusal(refusal, IAM_GATEWAY)
        if per_page is None:
            self_link = f"{self.url}{path}" + (f"?{raw_query}" if raw_query and path == PROJECTS_PATH else "")
            return self._json(200, {"projects": projects,
                                    "links": {"self": self_link, "previous": None, "next": None}})
        kept = [(k, v) for k, v in parse_qsl(raw_query, keep_blank_values=True)
                if k not in ("page", "per_page")] if path == PROJECTS_PATH else []

        def link(number: int) -> str:
            return f"{self.url}{path}?" + urlencode([("page", number), ("per_page", size), *kept])

        next_link = link(page + 1) if more else None
        if page == 1 and first_next is not None:
            next_link = first_next
        links = {"self": link(page), "previous": link(page - 1) if page > 1 else None, "next": next_link}
        return self._json(200, {"projects": projects, "links": links})

    def _answer(self, state: _ProjectState, query: dict[str, str]) -> _Response:
        failing = next((f for f in state.faults if (f.fault is not None or f.kind == "silent") and f.active()),
                       None)
        if failing is not None:
            failing.consume()
            if failing.fault is None:
                return _Response(None, delivery="silent")
            return self._fault(failing.fault)
        if self.fault_rate and self.fault_kinds and self._fault_rng.random() < self.fault_rate:
            return self._fault(RANDOM_FAULTS[self._fault_rng.choice(self.fault_kinds)])
        try:
            limit = _int_param(query, "limit", MAX_LIMIT, MAX_LIMIT)
            offset = _int_param(query, "offset", 0, MAX_OFFSET)
            sort_field = _enum_param(query, "sort_field", SORT_FIELDS)
            sort_type = _enum_param(query, "sort_type", SORT_TYPES)
        except _BadRequest as exc:
            return self._error(400, "WKS.0001", str(exc))
        if self._modifier(state, "stuck"):
            offset = 0
        matching = [image for image in state.live if self._matches(image, query)]
        ordered = sort_images(matching, sort_field, descending=sort_type == "desc")
        page = [self._serialise(image) for image in ordered[offset:offset + limit]]
        lying = self._take(state, "total_count")
        total = lying.total if lying is not None else len(matching)
        body = _json_bytes({"total_count": total, "images": page}, compact=True,
                           truncate=self._modifier(state, "malformed"))
        return _Response(200, body, self._headers())

    def _modifier(self, state: _ProjectState, kind: str) -> bool:
        return self._take(state, kind) is not None

    @staticmethod
    def _take(state: _ProjectState, kind: str) -> _ProjectFault | None:
        """Consume and return the first active fault of a kind, or None."""
        for fault in state.faults:
            if fault.kind == kind and fault.active():
                fault.consume()
                return fault
        return None

    def _matches(self, image: Image, query: dict[str, str]) -> bool:
        for param, field_name in FILTER_FIELDS.items():
            wanted = query.get(param)
            if not wanted:
                continue
            value = image.get(field_name, self.extra_fields.get(field_name))
            if value is not None and value != wanted:
                return False
        return True

    def _serialise(self, image: Image) -> Image:
        if not self.extra_fields:
            return image
        served = dict(image)
        for name, value in self.extra_fields.items():
            served.setdefault(name, value)
        return served

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"Content-Type": JSON_CONTENT_TYPE, "X-Request-Id": uuid.uuid4().hex}

    def _json(self, status: int, body: dict[str, Any]) -> _Response:
        headers = self._headers()
        return _Response(status, _json_bytes(body), headers)

    def _keystone_error(self, status: int, message: str) -> _Response:
        title = KEYSTONE_TITLES.get(status, "Error")
        return self._json(status, {"error": {"code": status, "message": message, "title": title}})

    def _refusal(self, refusal: AuthError, prefix: str) -> _Response:
        if refusal.code is None:
            return self._keystone_error(refusal.status, refusal.message)
        return self._error(refusal.status, f"{prefix}{refusal.code}", refusal.message)

    def _error(self, status: int, error_code: str, error_msg: str) -> _Response:
        headers = self._headers()
        body = {"error_code": error_code, "error_msg": error_msg, "request_id": headers["X-Request-Id"]}
        return _Response(status, _json_bytes(body), headers)

    def _fault(self, fault: Fault) -> _Response:
        if fault.drop:
            return _Response(None)
        response = self._error(fault.status, fault.error_code, fault.error_msg)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response


def _json_bytes(value: Any, *, compact: bool = False, truncate: bool = False) -> bytes:
    """Serialise a body as UTF-8 JSON.

    Text that UTF-8 cannot carry (a lone surrogate such as ``"\\ud800"``)
    makes the whole body ASCII, with ``\\uXXXX`` escapes, as ``json.dumps``
    writes it with ``ensure_ascii=True``.

    Args:
        value: The body.
        compact: Leave out the spaces after ``,`` and ``:``.
        truncate: Keep only the first half of the text (a malformed body).

    Returns:
        The encoded body.
    """
    separators = (",", ":") if compact else None
    for ensure_ascii in (False, True):
        text = json.dumps(value, ensure_ascii=ensure_ascii, separators=separators)
        if truncate:
            text = text[: max(1, len(text) // 2)]
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            continue
    raise AssertionError("ASCII JSON always encodes")


def _int_param(query: dict[str, str], name: str, default: int, maximum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if re.fullmatch(r"-?[0-9]{1,12}", raw) is None or not 0 <= int(raw) <= maximum:
        raise _BadRequest(f"The parameter {name} is invalid: {raw!r} is not an integer from 0 to {maximum}.")
    return int(raw)


def _enum_param(query: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    raw = query.get(name)
    if raw is None:
        return allowed[0]
    if raw not in allowed:
        raise _BadRequest(f"The parameter {name} is invalid: {raw!r} is not one of {', '.join(allowed)}.")
    return raw
