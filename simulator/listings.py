"""IAM's project listings: the entries, their filters and pages, and the raw entries tests add.

``GET /v3/auth/projects`` and ``GET /v3/projects`` answer with them; the
projects themselves are read from :class:`~simulator.accounts.Accounts`.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from typing import Any

from .accounts import Accounts
from .identity import AuthError

DEFAULT_PER_PAGE = 5000
"""Entries on a page of a project listing when neither the request nor the store sets a size."""


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


class Listings:
    """The project listings of each account, with their raw entries and paging.

    Every public method takes the lock.

    Args:
        directory: The accounts and projects listed.
        lock: The lock shared with the simulator.
    """

    def __init__(self, directory: Accounts, lock: threading.RLock) -> None:
        self.directory = directory
        self._lock = lock
        self._raw_entries: dict[str, list[Any]] = {}
        self._per_page: int | None = None
        self._next_url: str | None = None

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
            account = self.directory.account(domain)
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
            self._per_page = per_page
            self._next_url = next_url

    @property
    def listing_paging(self) -> tuple[int | None, str | None]:
        """``(per_page, next_url)`` as set by :meth:`set_listing_paging`."""
        with self._lock:
            return self._per_page, self._next_url

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
            default = self._per_page or DEFAULT_PER_PAGE
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
            account = self.directory.account(domain)
            own = self.directory.projects(domain)
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
