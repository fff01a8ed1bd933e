"""The simulated IAM and gateway as one store: a directory, a token desk, the gateway's checks, the listings.

Each part keeps its own state and reads the others through their public
methods: the accounts and projects (:mod:`simulator.accounts`), the tokens,
temporary keys and locked users (:mod:`simulator.tokens`), the checks of each
request and locked AKs (:mod:`simulator.gateway`), and the project listings
(:mod:`simulator.listings`). This store builds them on one lock and one clock
and passes its public methods on to them.

Refusals are :class:`~simulator.identity.AuthError`. Which message answers
which mistake, and which of them are Huawei's own words, is listed in the
README under "The simulator".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .accounts import Accounts
from .gateway import Gateway
from .identity import Caller, IamProject, SimAccount
from .listings import Listings
from .signing import Headers
from .tokens import DEFAULT_TEMPORARY_TTL, Tokens


class IdentityStore:
    """Accounts, projects, tokens and keys of the simulated IAM and gateway.

    Every public method takes the simulator's lock.

    Args:
        seed: Seed of generated IDs and default keys.
        lock: The lock shared with the simulator.
        token_ttl: Lifetime of issued tokens, seconds.
        fixed_token: A token that never expires, valid for every project of
            the default account.

    Attributes:
        directory: The accounts and IAM's view of the projects.
        tokens: Issued tokens, temporary credentials and locked users.
        gateway: The checks of each request and locked AKs.
        listings: The project listings, their raw entries and paging.
    """

    def __init__(self, seed: int, lock: threading.RLock, token_ttl: float, fixed_token: str) -> None:
        self.directory = Accounts(seed, lock)
        self.tokens = Tokens(self.directory, lock, token_ttl, fixed_token, time.time)
        self.gateway = Gateway(self.directory, self.tokens, lock, time.time)
        self.listings = Listings(self.directory, lock)
        self._lock = lock

    @property
    def seed(self) -> int:
        """Seed of generated IDs and default keys."""
        return self.directory.seed

    @property
    def clock(self) -> Callable[[], float]:
        """The server clock for token expiry, locks and ``X-Sdk-Date``: the current time as epoch seconds.

        Tests may replace it; the token desk and the gateway then both read the new one.
        """
        return self.tokens.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        with self._lock:
            self.tokens.clock = clock
            self.gateway.clock = clock

    # accounts and projects: see simulator.accounts

    def add_account(
        self,
        domain: str,
        user: str | None = None,
        password: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
    ) -> SimAccount:
        """Create an account (IAM domain) with its user, AK/SK and ``MOS`` project (:meth:`Accounts.add_account`).

        Its AK must not be a temporary AK either. Give it Workspace projects
        with ``Simulator.add_project(..., account=domain)``.
        """
        with self._lock:
            return self.directory.add_account(domain, user, password, access_key, secret_key,
                                              key_taken=lambda key: self.tokens.temporary_key(key) is not None)

    @property
    def accounts(self) -> list[SimAccount]:
        """The accounts, the default one first."""
        return self.directory.accounts

    def account(self, domain: str | None = None) -> SimAccount:
        """Return an account, the default one when ``domain`` is None (:meth:`Accounts.account`)."""
        return self.directory.account(domain)

    def account_of(self, project_id: str) -> SimAccount:
        """Return the account a project (Workspace or ``MOS``) belongs to (:meth:`Accounts.account_of`)."""
        return self.directory.account_of(project_id)

    def project_name(self, region: str, domain: str, name: str | None) -> str:
        """Check or choose the IAM name of a new Workspace project (:meth:`Accounts.project_name`)."""
        return self.directory.project_name(region, domain, name)

    def register_project(self, project_id: str, name: str, domain: str, region: str, enabled: bool) -> None:
        """Add a Workspace project to IAM (:meth:`Accounts.register_project`)."""
        self.directory.register_project(project_id, name, domain, region, enabled)

    def project(self, project_id: str) -> IamProject | None:
        """Return the IAM view of a project, or None when unknown."""
        return self.directory.project(project_id)

    def set_enabled(self, project_id: str, enabled: bool) -> None:
        """Enable or disable a project.

        A disabled project stays in IAM listings with ``enabled: false``;
        Workspace calls for it answer 403 ``APIG.0302`` and IAM refuses to scope
        new tokens to it.

        Args:
            project_id: The project (``MOS`` projects included).
            enabled: The new state.
        """
        self.directory.set_enabled(project_id, enabled)

    # listings: see simulator.listings

    def add_raw_listing_entry(self, entry: Any, domain: str | None = None) -> None:
        """Append an entry, verbatim and unvalidated, to an account's project listings
        (:meth:`Listings.add_raw_listing_entry`)."""
        self.listings.add_raw_listing_entry(entry, domain)

    def clear_raw_listing_entries(self) -> None:
        """Remove the raw entries of every account."""
        self.listings.clear_raw_listing_entries()

    def set_listing_paging(self, per_page: int | None, next_url: str | None = None) -> None:
        """Serve project listings in pages, as IAM does (:meth:`Listings.set_listing_paging`)."""
        self.listings.set_listing_paging(per_page, next_url)

    @property
    def listing_paging(self) -> tuple[int | None, str | None]:
        """``(per_page, next_url)`` as set by :meth:`set_listing_paging`."""
        return self.listings.listing_paging

    def listing_page(
        self, domain: str, base_url: str, filters: Mapping[str, str]
    ) -> tuple[list[Any], int, int, bool]:
        """Return one page of an account's listing and whether more follow (:meth:`Listings.listing_page`)."""
        return self.listings.listing_page(domain, base_url, filters)

    def listing(self, domain: str, base_url: str, filters: Mapping[str, str] | None = None) -> list[Any]:
        """Return an account's projects as IAM lists them (:meth:`Listings.listing`)."""
        return self.listings.listing(domain, base_url, filters)

    # tokens: see simulator.tokens

    @property
    def fixed_token(self) -> str:
        """The fixed ``X-Auth-Token``: never expires, valid for every project of the default account."""
        return self.tokens.fixed_token

    @property
    def token_ttl(self) -> float:
        """Lifetime in seconds of tokens issued from now on (> 0)."""
        return self.tokens.token_ttl

    @token_ttl.setter
    def token_ttl(self, seconds: float) -> None:
        self.tokens.token_ttl = seconds

    def issue_token(self, body: bytes, catalog: bool = True) -> tuple[str, dict[str, Any]]:
        """Answer ``POST /v3/auth/tokens`` with the password method (:meth:`Tokens.issue_token`)."""
        return self.tokens.issue_token(body, catalog)

    def grant_token(self, domain: str | None = None, project_id: str | None = None,
                    ttl: float | None = None) -> str:
        """Issue a token as ``POST /v3/auth/tokens`` would, without the HTTP call (:meth:`Tokens.grant_token`)."""
        return self.tokens.grant_token(domain, project_id, ttl)

    def issued_tokens(self) -> list[str]:
        """Every token issued so far, expired ones included: tests check that none leaks into output or files."""
        return self.tokens.issued_tokens()

    def expire_tokens(self) -> None:
        """Make every issued token and temporary credential expire now (the fixed token stays valid)."""
        self.tokens.expire_tokens()

    def unlock_users(self) -> None:
        """Unlock users locked after 5 wrong passwords in a row (15 minutes anyway) and forget every count."""
        self.tokens.unlock_users()

    def issue_temporary_credentials(self, domain: str | None = None,
                                    ttl: float = DEFAULT_TEMPORARY_TTL) -> tuple[str, str, str]:
        """Create temporary AK/SK credentials of an account: ``(access_key, secret_key, security_token)``
        (:meth:`Tokens.issue_temporary_credentials`)."""
        return self.tokens.issue_temporary_credentials(domain, ttl)

    # the gateway's checks: see simulator.gateway

    def authorize_workspace(
        self, method: str, path: str, query: str, headers: Headers, body: bytes, project_id: str
    ) -> Caller:
        """Decide whether a Workspace request may read a project (:meth:`Gateway.authorize_workspace`)."""
        return self.gateway.authorize_workspace(method, path, query, headers, body, project_id)

    def authorize_iam(
        self, method: str, path: str, query: str, headers: Headers, body: bytes, *, allow_signature: bool
    ) -> Caller:
        """Decide which account an IAM call (project listing) acts for (:meth:`Gateway.authorize_iam`)."""
        return self.gateway.authorize_iam(method, path, query, headers, body, allow_signature=allow_signature)

    def unlock_keys(self) -> None:
        """Unlock AKs locked after more than 5 bad signatures in a row (5 minutes anyway) and forget every count."""
        self.gateway.unlock_keys()
