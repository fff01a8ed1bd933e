"""The :class:`Simulator`: Workspace ``GET /v2/{project_id}/images`` and IAM served on one loopback port.

:class:`Simulator` serves seeded, day-evolving image catalogues for many
projects, with the API's paging, filters, sorting, error bodies and
authentication, and with the faults a client has to survive: throttling with
and without ``Retry-After``, 5xx errors, dropped connections, malformed bodies,
paging that never advances, a lying ``total_count``, answers that drip one byte
at a time or never come, slow projects, redirects to other hosts, and data that
changes while a project is being paged. The same port serves the IAM calls a
client makes before it reads images: ``POST /v3/auth/tokens``,
``GET /v3/auth/projects`` and ``GET /v3/projects``.

This module builds it and holds its lifecycle, its record of requests and its
redirects. The projects and the knobs that change them are its base class's
(:mod:`simulator.workspace`); the answers are :mod:`simulator.api`'s, the HTTP
layer :mod:`simulator.httpd`, the fault kinds :mod:`simulator.faults`, the
identity side :mod:`simulator.iam` (with :mod:`simulator.tokens` and
:mod:`simulator.gateway`), AK/SK :mod:`simulator.signing`, the image
catalogues :mod:`simulator.data`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from .api import TOKENS_PATH
from .data import DEFAULT_REGIONS, project_id_for
from .faults import _Redirect
from .httpd import POLL_INTERVAL, RequestRecord, _Server
from .iam import IdentityStore
from .identity import DEFAULT_ACCESS_KEY, DEFAULT_DOMAIN, DEFAULT_PASSWORD, DEFAULT_SECRET_KEY, DEFAULT_USER
from .tokens import DEFAULT_TOKEN_TTL
from .workspace import Workspace

LOGGER = logging.getLogger("workspace_images.simulator")


class Simulator(Workspace):
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

    Its projects, their data, faults and hooks come from :class:`~simulator.workspace.Workspace`.

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
        lock = threading.RLock()
        super().__init__(IdentityStore(seed, lock, token_ttl, token), lock, seed, day, fault_rate, start_date)
        self.latency_ms = latency_ms
        self.host = host
        self.port = port
        self.requests: list[RequestRecord] = []
        self._redirects: list[_Redirect] = []
        self._server: _Server | None = None
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
        for index in range(projects):
            self._add(self.regions[index % len(self.regions)], images, project_id_for(seed, index), added_day=0)
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

    # requests

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

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
        redirect = _Redirect(path_prefix, location, status, times)
        with self._lock:
            self._redirects.append(redirect)

    def clear_redirects(self) -> None:
        """Remove every redirect added with :meth:`redirect`."""
        with self._lock:
            self._redirects.clear()
