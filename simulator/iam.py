"""The simulated IAM's store: accounts, IAM's view of the projects, and the project listings.

Its tokens (:mod:`simulator.tokens`) and the gateway's checks
(:mod:`simulator.gateway`) are parts of the same store.

Refusals are :class:`~simulator.identity.AuthError`. Which message answers
which mistake, and which of them are Huawei's own words, is listed in the
README under "The simulator".
"""

from __future__ import annotations

import copy
import json
import random
import string
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .gateway import Gateway
from .identity import (
    DEFAULT_PASSWORD,
    DEFAULT_SECRET_KEY,
    DEFAULT_USER,
    MOS_PROJECT,
    AuthError,
    IamProject,
    SimAccount,
)
from .tokens import Tokens

DEFAULT_PER_PAGE = 5000
"""Entries on a page of a project listing when neither the request nor the store sets a size."""


def _hex_id(seed: int, *parts: object) -> str:
    return f"{random.Random(':'.join(map(str, (seed, *parts)))).getrandbits(128):032x}"


def _is_bool_false(text: str) -> bool:
    return text.strip().lower() in ("false", "0", "no", "off")


def _positive(filters: Mapping[str, str], name: str, default: int) -> int:
    raw = filters.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise AuthError.invalid(name, f"{raw!r} is not a positive integer")
    return int(raw)


def _page(entries: list[Any], filters: Mapping[str, str], per_page: int) -> tuple[list[Any], int, int, bool]:
    """Return one page of entries, its number, its size, and whether a later page holds entries.

    The filters' ``page`` (default 1) and ``per_page`` (default ``per_page``) choose it.
    """
    page = _positive(filters, "page", 1)
    per_page = _positive(filters, "per_page", per_page)
    return entries[(page - 1) * per_page:page * per_page], page, per_page, page * per_page < len(entries)


class IdentityStore(Tokens, Gateway):
    """Accounts, projects, tokens and keys of the simulated IAM and gateway.

    The accounts, IAM's view of the projects and the listings are kept here;
    tokens, temporary credentials and locked users by :class:`~simulator.tokens.Tokens`,
    the checks of each request and locked AKs by :class:`~simulator.gateway.Gateway`.
    Every public method takes the simulator's lock.

    Args:
        seed: Seed of generated IDs and default keys.
        lock: The lock shared with the simulator.
        token_ttl: Lifetime of issued tokens, seconds.
        fixed_token: A token that never expires, valid for every project of
            the default account.

    Attributes:
        clock: The server clock for token expiry, locks and ``X-Sdk-Date``:
            returns the current time as epoch seconds; tests may replace it.
    """

    def __init__(self, seed: int, lock: threading.RLock, token_ttl: float, fixed_token: str) -> None:
        Tokens.__init__(self, token_ttl, fixed_token)
        Gateway.__init__(self)
        self.seed = seed
        self.clock: Callable[[], float] = time.time
        self._lock = lock
        self._accounts: dict[str, SimAccount] = {}
        self._by_access_key: dict[str, SimAccount] = {}
        self._projects: dict[str, IamProject] = {}
        self._raw_entries: dict[str, list[Any]] = {}
        self._listing_per_page: int | None = None
        self._listing_next_url: str | None = None

    # accounts and projects

    def add_account(
        self,
        domain: str,
        user: str | None = None,
        password: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> SimAccount:
        """Create an account (IAM domain) with its user, AK/SK and ``MOS`` project.

        Give it Workspace projects with ``Simulator.add_project(..., account=domain)``.

        Args:
            domain: The account (domain) name; unique.
            user: The user name (default ``sim-user``).
            password: The password (default ``sim-password``).
            access_key: The AK; unique (default ``SIMACCESSKEY`` and a
                10-digit account number, the first account's being
                :data:`DEFAULT_ACCESS_KEY`).
            secret_key: The SK (default :data:`DEFAULT_SECRET_KEY` for the
                first account, a seeded 40-character key for the others).

        Returns:
            The account.
        """
        if not domain or not domain.strip():
            raise ValueError("domain must not be empty")
        with self._lock:
            if domain in self._accounts:
                raise ValueError(f"account {domain} already exists")
            number = len(self._accounts) + 1
            if secret_key is None:
                if number == 1:
                    secret_key = DEFAULT_SECRET_KEY
                else:
                    rng = random.Random(f"{self.seed}:secret-key:{domain}")
                    secret_key = "SimSecretKey" + "".join(
                        rng.choice(string.ascii_letters + string.digits) for _ in range(28))
            account = SimAccount(
                domain=domain,
                domain_id=_hex_id(self.seed, "domain", domain),
                user=user or DEFAULT_USER,
                user_id=_hex_id(self.seed, "user", domain),
                password=password or DEFAULT_PASSWORD,
                access_key=access_key or f"SIMACCESSKEY{number:010d}",
                secret_key=secret_key,
                mos_project_id=_hex_id(self.seed, "mos", domain),
            )
            if account.access_key in self._by_access_key or account.access_key in self._temporary:
                raise ValueError(f"access key {account.access_key} is already in use")
            self._accounts[domain] = account
            self._by_access_key[account.access_key] = account
            self._projects[account.mos_project_id] = IamProject(account.mos_project_id, MOS_PROJECT, domain, None)
            return account

    @property
    def accounts(self) -> list[SimAccount]:
        """The accounts, the default one first."""
        with self._lock:
            return list(self._accounts.values())

    def account(self, domain: str | None = None) -> SimAccount:
        """Return an account.

        Args:
            domain: Its domain name; the default account when None.

        Returns:
            The account.

        Raises:
            KeyError: No such account.
        """
        with self._lock:
            if domain is None:
                return next(iter(self._accounts.values()))
            try:
                return self._accounts[domain]
            except KeyError:
                raise KeyError(f"unknown account {domain}") from None

    def account_of(self, project_id: str) -> SimAccount:
        """Return the account a project (Workspace or ``MOS``) belongs to.

        Raises:
            KeyError: No such project.
        """
        with self._lock:
            project = self._projects.get(project_id)
            if project is None:
                raise KeyError(f"unknown project {project_id}")
            return self._accounts[project.domain]

    def project_name(self, region: str, domain: str, name: str | None) -> str:
        """Check or choose the IAM name of a new Workspace project.

        Args:
            region: The project's region.
            domain: Its account.
            name: The wanted name, or None for ``region`` when the account has
                no project of that name yet, else ``{region}_teamN``.

        Returns:
            The name.

        Raises:
            ValueError: The name is taken in the account, is ``MOS``, or is
                neither the region nor ``{region}_{suffix}``.
        """
        with self._lock:
            taken = {p.name for p in self._projects.values() if p.domain == domain}
            if name is None:
                if region not in taken:
                    return region
                in_region = sum(1 for p in self._projects.values() if p.domain == domain and p.region == region)
                name = f"{region}_team{in_region}"
                while name in taken:
                    in_region += 1
                    name = f"{region}_team{in_region}"
                return name
            if name == MOS_PROJECT or not (name == region or (name.startswith(region + "_") and
                                                                len(name) > len(region) + 1)):
                raise ValueError(f"project name {name!r} must be {region!r} or {region!r}_SUFFIX")
            if name in taken:
                raise ValueError(f"account {domain} already has a project named {name}")
            return name

    def register_project(self, project_id: str, name: str, domain: str, region: str, enabled: bool) -> None:
        """Add a Workspace project to IAM.

        Args:
            project_id: Its ID.
            name: Its name (see :meth:`project_name`).
            domain: Its account.
            region: Its region.
            enabled: Whether it is enabled.
        """
        with self._lock:
            if project_id in self._projects:
                raise ValueError(f"project {project_id} already exists")
            self.account(domain)
            self._projects[project_id] = IamProject(project_id, name, domain, region, enabled)

    def project(self, project_id: str) -> IamProject | None:
        """Return the IAM view of a project, or None when unknown."""
        with self._lock:
            return self._projects.get(project_id)

    def set_enabled(self, project_id: str, enabled: bool) -> None:
        """Enable or disable a project.

        A disabled project stays in IAM listings with ``enabled: false``;
        Workspace calls for it answer 403 ``APIG.0302`` and IAM refuses to scope
        new tokens to it.

        Args:
            project_id: The project (``MOS`` projects included).
            enabled: The new state.
        """
        with self._lock:
            try:
                self._projects[project_id].enabled = enabled
            except KeyError:
                raise KeyError(f"unknown project {project_id}") from None

    # listings

    def add_raw_listing_entry(self, entry: Any, domain: str | None = None) -> None:
        """Append an entry, verbatim and unvalidated, to an account's project listings.

        ``GET /v3/auth/projects`` and ``GET /v3/projects`` serve it after the
        real projects, whatever the filters, e.g. ``{"id": "x'); DROP TABLE
        t; --", "name": "cn-north-4"}``, ``{"id": ""}``, ``{"id": 7}`` or not
        even an object. Paging (``page``, ``per_page``) counts it.

        Args:
            entry: Any JSON-able value, normally a dict; it is copied.
            domain: The account; the default one when None.

        Raises:
            TypeError: ``entry`` cannot be serialised as JSON (ValueError
                when it refers to itself).
            KeyError: No such account.
        """
        json.dumps(entry)
        with self._lock:
            account = self.account(domain)
            self._raw_entries.setdefault(account.domain, []).append(copy.deepcopy(entry))

    def clear_raw_listing_entries(self) -> None:
        """Remove the raw entries of every account."""
        with self._lock:
            self._raw_entries.clear()

    def set_listing_paging(self, per_page: int | None, next_url: str | None = None) -> None:
        """Serve project listings in pages, as IAM does with ``page`` and ``per_page``.

        With ``per_page`` set, both listings serve page ``page`` (default 1)
        of ``per_page`` entries (the request's ``per_page`` wins when given),
        with ``links.next`` pointing to the next page on the same host,
        ``{endpoint}{path}?page=N&per_page=M`` (``/v3/projects`` keeps its
        filters after them), or null on the last page, and ``links.previous``
        likewise.

        Args:
            per_page: Entries per page; None serves everything in one answer
                with null links (the default).
            next_url: When given, the ``links.next`` of every first page,
                verbatim, even when everything fits on it: point it at
                another host to check that a client does not follow it.

        Raises:
            ValueError: ``per_page`` < 1, or ``next_url`` without ``per_page``.
        """
        if per_page is not None and (isinstance(per_page, bool) or not isinstance(per_page, int) or per_page < 1):
            raise ValueError(f"per_page must be None or an integer >= 1, got {per_page!r}")
        if per_page is None and next_url is not None:
            raise ValueError("next_url needs per_page")
        with self._lock:
            self._listing_per_page = per_page
            self._listing_next_url = next_url

    @property
    def listing_paging(self) -> tuple[int | None, str | None]:
        """``(per_page, next_url)`` as set by :meth:`set_listing_paging`."""
        with self._lock:
            return self._listing_per_page, self._listing_next_url

    def listing_page(
        self, domain: str, base_url: str, filters: Mapping[str, str]
    ) -> tuple[list[Any], int, int, bool]:
        """Return one page of an account's listing, sized as :meth:`set_listing_paging` says.

        Args:
            domain: The account.
            base_url: The IAM endpoint, for each entry's ``links.self``.
            filters: As for :meth:`listing`; ``page`` defaults to 1 and
                ``per_page`` to the configured size.

        Returns:
            ``(entries, page, per_page, more)``: ``more`` tells whether a later
            page holds entries.

        Raises:
            AuthError: ``page`` or ``per_page`` is not a positive integer.
        """
        with self._lock:
            default = self._listing_per_page or DEFAULT_PER_PAGE
        unpaged = {k: v for k, v in filters.items() if k not in ("page", "per_page")}
        return _page(self.listing(domain, base_url, unpaged), filters, default)

    def listing(self, domain: str, base_url: str, filters: Mapping[str, str] | None = None) -> list[Any]:
        """Return an account's projects as IAM lists them.

        Args:
            domain: The account.
            base_url: The IAM endpoint, for ``links.self``.
            filters: ``name``, ``enabled``, ``domain_id``, ``parent_id``,
                ``is_domain``, ``id`` (exact matches), ``page`` and ``per_page``.

        Returns:
            Project entries, ``MOS`` included, in creation order, then the
            account's raw entries (see :meth:`add_raw_listing_entry`),
            unfiltered; ``page`` and ``per_page`` slice the whole.

        Raises:
            AuthError: ``page`` or ``per_page`` is not a positive integer.
        """
        filters = filters or {}
        with self._lock:
            account = self.account(domain)
            own = [p for p in self._projects.values() if p.domain == domain]
            by_name = {p.name: p.project_id for p in own}
            entries = []
            for project in own:
                parent = account.domain_id
                if project.region is not None and project.name != project.region:
                    parent = by_name.get(project.region, account.domain_id)
                entries.append({
                    "id": project.project_id,
                    "name": project.name,
                    "domain_id": account.domain_id,
                    "parent_id": parent,
                    "enabled": project.enabled,
                    "is_domain": False,
                    "description": "",
                    "links": {"self": f"{base_url}/v3/projects/{project.project_id}"},
                })
            raw = copy.deepcopy(self._raw_entries.get(domain, []))
        for key in ("name", "domain_id", "parent_id", "id"):
            if key in filters:
                entries = [e for e in entries if e[key] == filters[key]]
        if "enabled" in filters:
            entries = [e for e in entries if e["enabled"] != _is_bool_false(filters["enabled"])]
        if "is_domain" in filters and not _is_bool_false(filters["is_domain"]):
            entries = []
        entries = [*entries, *raw]
        if "page" in filters or "per_page" in filters:
            entries = _page(entries, filters, DEFAULT_PER_PAGE)[0]
        return entries
