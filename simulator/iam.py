"""The simulated identity side of Huawei Cloud: IAM accounts, tokens, AK/SK and the gateway's checks.

An :class:`IdentityStore` holds the accounts (IAM domains), each with one user,
one permanent AK/SK pair and a ``MOS`` billing project, the IAM view of every
project (name, account, enabled), the tokens issued by ``POST /v3/auth/tokens``
and temporary AK/SK/security-token triples. It answers three questions:

- :meth:`IdentityStore.issue_token`: the IAM token API (Keystone error shape);
- :meth:`IdentityStore.authorize_workspace`: may this request read this
  project's Workspace API (gateway error shape);
- :meth:`IdentityStore.authorize_iam`: which account does this IAM project
  listing call belong to.

For clients' robustness tests the listings can carry raw, unvalidated entries
(:meth:`IdentityStore.add_raw_listing_entry`) and be served in pages with
``links.next`` (:meth:`IdentityStore.set_listing_paging`).

Refusals are :class:`AuthError`; the server renders them either as a gateway
body ``{"error_code": "APIG.0301", ...}`` (the prefix depends on the endpoint)
or as Keystone's ``{"error": {"code", "message", "title"}}``.

Where the public Huawei documentation gives a message, it is used verbatim:

- ``APIG.0301`` "Incorrect IAM authentication information: decrypt token fail"
  (unknown token), "...: Get secretKey failed,ak:******,err:ak not exist"
  (unknown AK), "...: verify aksk signature fail, ..." (bad signature), and
  "...: AK access failed to reach the limit,forbidden." (an AK locked for
  5 minutes after more than 5 bad signatures in a row);
- ``APIG.0307`` "The token must be updated." (expired token, or a token used
  against another region's endpoint);
- Keystone 401 "The account is locked." (a user locked for 15 minutes after 5
  wrong passwords in a row).

The other messages are the simulator's own, in the same style: a token scoped
to another project of the same region (or to a domain) and an AK/SK request
whose project does not match the URL answer ``APIG.0301`` "...: the project of
the ... does not match project P in the URL"; a stale ``X-Sdk-Date`` answers
``APIG.0301`` "...: signature expired, signature time:T,server time:S"
(modelled on the documented app-authentication message); a disabled project
answers 403 ``APIG.0302``.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import logging
import random
import secrets
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import signing
from .signing import Headers

LOGGER = logging.getLogger("workspace_images.simulator")

DEFAULT_DOMAIN = "sim-domain"
DEFAULT_USER = "sim-user"
DEFAULT_PASSWORD = "sim-password"
DEFAULT_ACCESS_KEY = "SIMACCESSKEY0000000001"
DEFAULT_SECRET_KEY = "SimSecretKey0000000000000000000000000001"
DEFAULT_TOKEN_TTL = 86400.0
"""Lifetime of an issued token, seconds (IAM's is 24 hours)."""
DEFAULT_TEMPORARY_TTL = 900.0
"""Lifetime of temporary AK/SK credentials, seconds (IAM's minimum is 15 minutes)."""
MOS_PROJECT = "MOS"
"""The billing project every account has; it holds no Workspace data."""

PASSWORD_ATTEMPTS = 5
"""Wrong passwords in a row that lock a user."""
USER_LOCK_SECONDS = 900.0
KEY_ATTEMPTS = 5
"""Bad signatures in a row an AK may have; the next one locks it."""
KEY_LOCK_SECONDS = 300.0
MAX_CLOCK_SKEW = 900.0
"""Largest accepted difference between ``X-Sdk-Date`` and the server clock, seconds."""
TOKEN_BYTES = 960
ROLES = ({"id": "0", "name": "te_admin"}, {"id": "1", "name": "op_gated_workspace"})

INCORRECT = "Incorrect IAM authentication information"
MISSING_CREDENTIALS = f"{INCORRECT}: the X-Auth-Token header is missing"
DECRYPT_FAIL = f"{INCORRECT}: decrypt token fail"
TOKEN_MUST_BE_UPDATED = "The token must be updated."
UNKNOWN_AK = f"{INCORRECT}: Get secretKey failed,ak:******,err:ak not exist"
AK_LOCKED = f"{INCORRECT}: AK access failed to reach the limit,forbidden."
NEEDS_AUTHENTICATION = "The request you have made requires authentication."
WRONG_PASSWORD = "The username or password is wrong."
ACCOUNT_LOCKED = "The account is locked."
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

KEYSTONE_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                   405: "Method Not Allowed"}


class AuthError(Exception):
    """A refused request.

    Args:
        status: HTTP status.
        message: The error message.
        code: The gateway code without its prefix (``"0301"``); None for a
            Keystone-shaped IAM error.
    """

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _keystone(status: int, message: str) -> AuthError:
    return AuthError(status, message)


def _gateway(status: int, code: str, message: str) -> AuthError:
    return AuthError(status, message, code)


def _invalid(field: str, problem: str) -> AuthError:
    return _keystone(400, f"Invalid input for field '{field}': {problem}")


@dataclass(frozen=True)
class SimAccount:
    """An account (IAM domain) with its one user and one permanent AK/SK pair.

    These are fake credentials that only the simulator accepts.

    Attributes:
        domain: The account (domain) name.
        domain_id: 32 hex digits.
        user: The IAM user name.
        user_id: 32 hex digits.
        password: The user's password.
        access_key: The permanent AK.
        secret_key: The permanent SK.
        mos_project_id: The ID of the account's ``MOS`` project.
    """

    domain: str
    domain_id: str
    user: str
    user_id: str
    password: str = field(repr=False)
    access_key: str
    secret_key: str = field(repr=False)
    mos_project_id: str


@dataclass
class IamProject:
    """A project as IAM lists it.

    Attributes:
        project_id: 32 hex digits.
        name: ``{region}``, ``{region}_{suffix}`` or ``MOS``.
        domain: The account's domain name.
        region: The region; None for ``MOS``.
        enabled: Whether the project is enabled.
    """

    project_id: str
    name: str
    domain: str
    region: str | None
    enabled: bool = True


@dataclass(frozen=True)
class Caller:
    """Who an accepted request authenticated as.

    Attributes:
        account: The account.
    """

    account: SimAccount


@dataclass
class _Token:
    domain: str
    project_id: str | None
    expires_at: float


@dataclass
class _TemporaryKey:
    secret_key: str
    security_token: str
    domain: str
    expires_at: float


def _hex_id(seed: int, *parts: object) -> str:
    return f"{random.Random(':'.join(map(str, (seed, *parts)))).getrandbits(128):032x}"


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).strftime(TIME_FORMAT)


def _new_token() -> str:
    return "MII" + base64.b64encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii")


def _is_bool_false(text: str) -> bool:
    return text.strip().lower() in ("false", "0", "no", "off")


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
        clock: The server clock for token expiry, locks and ``X-Sdk-Date``:
            returns the current time as epoch seconds; tests may replace it.
        fixed_token: The fixed ``X-Auth-Token``: never expires, valid for
            every project of the default account (Workspace and IAM listings).
    """

    def __init__(self, seed: int, lock: threading.RLock, token_ttl: float, fixed_token: str) -> None:
        self.seed = seed
        self.token_ttl = token_ttl
        self.fixed_token = fixed_token
        self.clock: Callable[[], float] = time.time
        self._lock = lock
        self._accounts: dict[str, SimAccount] = {}
        self._by_access_key: dict[str, SimAccount] = {}
        self._projects: dict[str, IamProject] = {}
        self._tokens: dict[str, _Token] = {}
        self._temporary: dict[str, _TemporaryKey] = {}
        self._password_failures: dict[tuple[str, str], int] = {}
        self._users_locked_until: dict[tuple[str, str], float] = {}
        self._signature_failures: dict[str, int] = {}
        self._keys_locked_until: dict[str, float] = {}
        self._raw_entries: dict[str, list[Any]] = {}
        self._listing_per_page: int | None = None
        self._listing_next_url: str | None = None

    @property
    def token_ttl(self) -> float:
        """Lifetime in seconds of tokens issued from now on (> 0)."""
        return self._token_ttl

    @token_ttl.setter
    def token_ttl(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"token_ttl must be > 0, got {seconds}")
        self._token_ttl = float(seconds)

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
            default = self._listing_per_page or 5000
        page = _positive(filters, "page", 1)
        per_page = _positive(filters, "per_page", default)
        entries = self.listing(domain, base_url, {k: v for k, v in filters.items() if k not in ("page", "per_page")})
        return entries[(page - 1) * per_page:page * per_page], page, per_page, page * per_page < len(entries)

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
            page = _positive(filters, "page", 1)
            per_page = _positive(filters, "per_page", 5000)
            entries = entries[(page - 1) * per_page:page * per_page]
        return entries

    # tokens

    def issue_token(self, body: bytes, catalog: bool = True) -> tuple[str, dict[str, Any]]:
        """Answer ``POST /v3/auth/tokens`` with the password method.

        Args:
            body: The request body.
            catalog: Whether to include the (empty) ``catalog``; ``?nocatalog=true`` omits it.

        Returns:
            The token (for ``X-Subject-Token``) and the response body.

        Raises:
            AuthError: Keystone-shaped: 400 malformed body or scope, 401 wrong
                credentials, locked user, unsupported method, no access to or
                disabled project, 404 unknown project or domain in the scope.
        """
        user_spec, password, scope = _parse_token_request(body)
        with self._lock:
            now = self.clock()
            account = self._password_account(user_spec, password, now)
            project = self._scope(account, scope)
            token = _new_token()
            self._tokens[token] = _Token(account.domain, project.project_id if project else None,
                                         now + self.token_ttl)
            expires_at = now + self.token_ttl
        LOGGER.info("IAM issued a token to %s/%s scoped to %s", account.domain, account.user,
                    f"project {project.name}" if project else f"domain {account.domain}")
        domain_ref = {"id": account.domain_id, "name": account.domain}
        answer: dict[str, Any] = {
            "expires_at": _iso(expires_at),
            "issued_at": _iso(now),
            "methods": ["password"],
        }
        if project is not None:
            answer["project"] = {"id": project.project_id, "name": project.name, "domain": domain_ref}
        else:
            answer["domain"] = domain_ref
        answer["user"] = {"id": account.user_id, "name": account.user, "domain": domain_ref,
                          "password_expires_at": ""}
        answer["roles"] = [dict(role) for role in ROLES]
        if catalog:
            answer["catalog"] = []
        return token, {"token": answer}

    def _password_account(self, user_spec: dict[str, Any], password: str, now: float) -> SimAccount:
        account = None
        if "id" in user_spec:
            account = next((a for a in self._accounts.values() if a.user_id == user_spec["id"]), None)
        else:
            domain = user_spec["domain"]
            candidate = (self._accounts.get(domain["name"]) if "name" in domain else
                         next((a for a in self._accounts.values() if a.domain_id == domain.get("id")), None))
            if candidate is not None and candidate.user == user_spec["name"]:
                account = candidate
        if account is None:
            LOGGER.info("IAM refused a token: unknown user")
            raise _keystone(401, WRONG_PASSWORD)
        key = (account.domain, account.user)
        locked_until = self._users_locked_until.get(key)
        if locked_until is not None:
            if locked_until > now:
                LOGGER.info("IAM refused a token: user %s/%s is locked", *key)
                raise _keystone(401, ACCOUNT_LOCKED)
            del self._users_locked_until[key]
        if not secrets.compare_digest(password.encode("utf-8"), account.password.encode("utf-8")):
            failures = self._password_failures.get(key, 0) + 1
            self._password_failures[key] = failures
            if failures >= PASSWORD_ATTEMPTS:
                self._users_locked_until[key] = now + USER_LOCK_SECONDS
                self._password_failures.pop(key, None)
                LOGGER.warning("IAM locked user %s/%s after %d wrong passwords", *key, failures)
            else:
                LOGGER.info("IAM refused a token: wrong password for %s/%s (%d in a row)", *key, failures)
            raise _keystone(401, WRONG_PASSWORD)
        self._password_failures.pop(key, None)
        return account

    def _scope(self, account: SimAccount, scope: dict[str, Any]) -> IamProject | None:
        if "domain" in scope:
            wanted = scope["domain"]
            if wanted.get("name", account.domain) != account.domain or \
                    wanted.get("id", account.domain_id) != account.domain_id:
                label = wanted.get("name") or wanted.get("id")
                known = any(label in (a.domain, a.domain_id) for a in self._accounts.values())
                if not known:
                    raise _keystone(404, f"Could not find domain: {label}.")
                raise _keystone(401, f"User {account.user_id} has no access to domain {label}.")
            return None
        wanted = scope["project"]
        if "id" in wanted:
            project = self._projects.get(wanted["id"])
            label = wanted["id"]
        else:
            domain = wanted["domain"]
            owner = (self._accounts.get(domain["name"]) if "name" in domain else
                     next((a for a in self._accounts.values() if a.domain_id == domain["id"]), None))
            label = wanted["name"]
            project = None
            if owner is not None:
                project = next((p for p in self._projects.values()
                                if p.domain == owner.domain and p.name == wanted["name"]), None)
        if project is None:
            raise _keystone(404, f"Could not find project: {label}.")
        if project.domain != account.domain:
            raise _keystone(401, f"User {account.user_id} has no access to project {project.project_id}.")
        if not project.enabled:
            raise _keystone(401, f"The project {project.project_id} is disabled.")
        return project

    def grant_token(self, domain: str | None = None, project_id: str | None = None,
                    ttl: float | None = None) -> str:
        """Issue a token as ``POST /v3/auth/tokens`` would, without the HTTP call.

        Args:
            domain: The account; the project's account, or the default one, when None.
            project_id: Scope to this project; scope to the domain when None.
            ttl: Lifetime in seconds; :attr:`token_ttl` when None.

        Returns:
            The token.
        """
        with self._lock:
            if project_id is not None:
                project = self._projects.get(project_id)
                if project is None:
                    raise KeyError(f"unknown project {project_id}")
                if domain is not None and domain != project.domain:
                    raise ValueError(f"project {project_id} belongs to account {project.domain}, not {domain}")
                domain = project.domain
            account = self.account(domain)
            now = self.clock()
            token = _new_token()
            self._tokens[token] = _Token(account.domain, project_id, now + (ttl or self.token_ttl))
            return token

    def issued_tokens(self) -> list[str]:
        """Every token issued so far (by ``POST /v3/auth/tokens`` or :meth:`grant_token`), expired ones included.

        Tests use it to check that no token leaks into output or files.
        """
        with self._lock:
            return list(self._tokens)

    def expire_tokens(self) -> None:
        """Make every issued token and temporary credential expire now (the fixed token stays valid)."""
        with self._lock:
            now = self.clock()
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, now)
            for key in self._temporary.values():
                key.expires_at = min(key.expires_at, now)

    def unlock_users(self) -> None:
        """Unlock users locked after 5 wrong passwords in a row (15 minutes anyway) and forget every count."""
        with self._lock:
            self._users_locked_until.clear()
            self._password_failures.clear()

    def unlock_keys(self) -> None:
        """Unlock AKs locked after more than 5 bad signatures in a row (5 minutes anyway) and forget every count."""
        with self._lock:
            self._keys_locked_until.clear()
            self._signature_failures.clear()

    def issue_temporary_credentials(self, domain: str | None = None,
                                    ttl: float = DEFAULT_TEMPORARY_TTL) -> tuple[str, str, str]:
        """Create temporary AK/SK credentials of an account.

        Requests signed with the temporary AK must send the security token in
        ``X-Security-Token``; without it, with another one, or after ``ttl``
        they answer 401 ``APIG.0301``.

        Args:
            domain: The account; the default one when None.
            ttl: Lifetime in seconds.

        Returns:
            ``(access_key, secret_key, security_token)``.
        """
        alphabet = string.ascii_uppercase + string.digits
        with self._lock:
            account = self.account(domain)
            access_key = "SIMTMP" + "".join(secrets.choice(alphabet) for _ in range(14))
            secret_key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
            security_token = "gQpzaW0tc3RzLXRva2Vu" + base64.b64encode(secrets.token_bytes(600)).decode("ascii")
            self._temporary[access_key] = _TemporaryKey(secret_key, security_token, account.domain,
                                                        self.clock() + ttl)
            return access_key, secret_key, security_token

    # request authorization

    def authorize_workspace(
        self, method: str, path: str, query: str, headers: Headers, body: bytes, project_id: str
    ) -> Caller:
        """Decide whether a Workspace request may read a project.

        ``X-Auth-Token`` is checked when present, else an ``SDK-HMAC-SHA256``
        ``Authorization`` header.

        Args:
            method: The HTTP method.
            path: The raw path.
            query: The raw query string.
            headers: The received headers.
            body: The received body.
            project_id: The project in the URL.

        Returns:
            The caller.

        Raises:
            AuthError: Gateway-shaped (codes ``0301``, ``0302``, ``0307``).
        """
        token = signing.header_value(headers, "X-Auth-Token")
        with self._lock:
            if token:
                return self._workspace_token(token.strip(), project_id)
            if signing.header_value(headers, "Authorization"):
                caller = self._verify_signature(method, path, query, headers, body)
                self._check_signed_project(caller, headers, project_id)
                return caller
            raise _gateway(401, "0301", MISSING_CREDENTIALS)

    def _workspace_token(self, value: str, project_id: str) -> Caller:
        mismatch = f"{INCORRECT}: the project of the token does not match project {project_id} in the URL"
        if value == self.fixed_token:
            account = self.account()
            target = self._projects.get(project_id)
            if target is None or target.domain != account.domain or target.region is None:
                raise _gateway(401, "0301", mismatch)
            self._check_enabled(target)
            return Caller(account)
        token = self._tokens.get(value)
        if token is None:
            raise _gateway(401, "0301", DECRYPT_FAIL)
        if token.expires_at <= self.clock():
            raise _gateway(401, "0307", TOKEN_MUST_BE_UPDATED)
        account = self._accounts[token.domain]
        if token.project_id is None:
            raise _gateway(401, "0301", f"{mismatch} (the token is scoped to domain {token.domain})")
        if token.project_id != project_id:
            scoped = self._projects[token.project_id]
            target = self._projects.get(project_id)
            if target is not None and target.region is not None and scoped.region != target.region:
                raise _gateway(401, "0307", TOKEN_MUST_BE_UPDATED)
            raise _gateway(401, "0301", mismatch)
        target = self._projects[project_id]
        if target.region is None:
            raise _gateway(401, "0307", TOKEN_MUST_BE_UPDATED)
        self._check_enabled(target)
        return Caller(account)

    @staticmethod
    def _check_enabled(project: IamProject) -> None:
        if not project.enabled:
            raise _gateway(403, "0302", f"The IAM user is not authorized to access the API: "
                                        f"project {project.project_id} is disabled.")

    def _check_signed_project(self, caller: Caller, headers: Headers, project_id: str) -> None:
        declared = (signing.header_value(headers, "X-Project-Id") or "").strip() or None
        target = self._projects.get(project_id)
        if target is None or target.domain != caller.account.domain or target.region is None:
            raise _gateway(401, "0301", f"{INCORRECT}: project {project_id} in the URL does not belong to "
                                        f"the account of the access key")
        if declared is None:
            declared = next((p.project_id for p in self._projects.values()
                             if p.domain == target.domain and p.name == target.region), None)
        if declared != project_id:
            raise _gateway(401, "0301", f"{INCORRECT}: the project of the request ({declared or 'none'}) "
                                        f"does not match project {project_id} in the URL")
        self._check_enabled(target)

    def _verify_signature(self, method: str, path: str, query: str, headers: Headers, body: bytes) -> Caller:
        try:
            authorization = signing.parse_authorization(signing.header_value(headers, "Authorization") or "")
        except ValueError as exc:
            raise _gateway(401, "0301", f"{INCORRECT}: {exc}") from None
        access_key = authorization.access_key
        now = self.clock()
        temporary = self._temporary.get(access_key)
        account = self._by_access_key.get(access_key)
        if temporary is not None:
            account = self._accounts[temporary.domain]
            secret_key = temporary.secret_key
        elif account is not None:
            secret_key = account.secret_key
        else:
            raise _gateway(401, "0301", UNKNOWN_AK)
        locked_until = self._keys_locked_until.get(access_key)
        if locked_until is not None:
            if locked_until > now:
                raise _gateway(401, "0301", AK_LOCKED)
            del self._keys_locked_until[access_key]
        sdk_date = signing.header_value(headers, signing.DATE_HEADER)
        if not sdk_date:
            raise _gateway(401, "0301", f"{INCORRECT}: the {signing.DATE_HEADER} header is missing")
        try:
            signed_at = signing.parse_sdk_date(sdk_date)
        except ValueError:
            raise _gateway(401, "0301", f"{INCORRECT}: the {signing.DATE_HEADER} header {sdk_date!r} is not "
                                        f"like 20260101T120000Z") from None
        if abs(signed_at.timestamp() - now) > MAX_CLOCK_SKEW:
            server_time = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime(signing.DATE_FORMAT)
            raise _gateway(401, "0301", f"{INCORRECT}: signature expired, signature time:{sdk_date.strip()},"
                                        f"server time:{server_time}")
        security_token = (signing.header_value(headers, "X-Security-Token") or "").strip()
        if temporary is not None:
            if not security_token:
                raise _gateway(401, "0301", f"{INCORRECT}: the X-Security-Token header is required with a "
                                            f"temporary access key")
            if not secrets.compare_digest(security_token.encode(), temporary.security_token.encode()):
                raise _gateway(401, "0301", f"{INCORRECT}: the security token is invalid")
            if temporary.expires_at <= now:
                raise _gateway(401, "0301", f"{INCORRECT}: the security token has expired")
        elif security_token:
            raise _gateway(401, "0301", f"{INCORRECT}: the security token is invalid")
        if not signing.verify(secret_key, authorization, method, path, query, headers, body):
            failures = self._signature_failures.get(access_key, 0) + 1
            self._signature_failures[access_key] = failures
            if failures > KEY_ATTEMPTS:
                self._keys_locked_until[access_key] = now + KEY_LOCK_SECONDS
                self._signature_failures.pop(access_key, None)
                LOGGER.warning("gateway locked an access key of %s for %g s after %d bad signatures",
                               account.domain, KEY_LOCK_SECONDS, failures)
                raise _gateway(401, "0301", AK_LOCKED)
            detail = signing.describe(authorization, method, path, query, headers, body)
            raise _gateway(401, "0301", f"{INCORRECT}: verify aksk signature fail, {detail}")
        self._signature_failures.pop(access_key, None)
        return Caller(account)

    def authorize_iam(
        self, method: str, path: str, query: str, headers: Headers, body: bytes, *, allow_signature: bool
    ) -> Caller:
        """Decide which account an IAM call (project listing) acts for.

        Args:
            method: The HTTP method.
            path: The raw path.
            query: The raw query string.
            headers: The received headers.
            body: The received body.
            allow_signature: Whether AK/SK signing is accepted (``/v3/projects``)
                besides tokens.

        Returns:
            The caller.

        Raises:
            AuthError: Keystone 401 for a missing, unknown or expired token;
                gateway-shaped for AK/SK failures.
        """
        token = (signing.header_value(headers, "X-Auth-Token") or "").strip()
        with self._lock:
            if token:
                if token == self.fixed_token:
                    return Caller(self.account())
                issued = self._tokens.get(token)
                if issued is None or issued.expires_at <= self.clock():
                    raise _keystone(401, NEEDS_AUTHENTICATION)
                return Caller(self._accounts[issued.domain])
            if allow_signature and signing.header_value(headers, "Authorization"):
                return self._verify_signature(method, path, query, headers, body)
            raise _keystone(401, NEEDS_AUTHENTICATION)


def _positive(filters: Mapping[str, str], name: str, default: int) -> int:
    raw = filters.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise _keystone(400, f"Invalid input for field '{name}': {raw!r} is not a positive integer")
    return int(raw)


def _object(parent: Any, key: str, field: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise _invalid(field, f"'{key}' is a required object")
    return value


def _reference(value: dict[str, Any], field: str) -> dict[str, str]:
    ref = {k: value[k] for k in ("id", "name") if isinstance(value.get(k), str) and value[k]}
    if not ref:
        raise _invalid(field, "'id' or 'name' is required")
    return ref


def _parse_token_request(body: bytes) -> tuple[dict[str, Any], str, dict[str, Any]]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _keystone(400, "The request body is not valid JSON.") from None
    auth = _object(data, "auth", "auth")
    identity = _object(auth, "identity", "auth.identity")
    methods = identity.get("methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise _invalid("auth.identity.methods", "a non-empty list of strings is required")
    if "password" not in methods:
        raise _keystone(401, "Attempted to authenticate with an unsupported method.")
    user = _object(_object(identity, "password", "auth.identity"), "user", "auth.identity.password")
    password = user.get("password")
    if not isinstance(password, str) or not password:
        raise _invalid("auth.identity.password.user", "'password' is a required property")
    if isinstance(user.get("id"), str) and user["id"]:
        user_spec: dict[str, Any] = {"id": user["id"]}
    else:
        if not isinstance(user.get("name"), str) or not user["name"]:
            raise _invalid("auth.identity.password.user", "'name' or 'id' is required")
        domain = _reference(_object(user, "domain", "auth.identity.password.user"),
                            "auth.identity.password.user.domain")
        user_spec = {"name": user["name"], "domain": domain}
    raw_scope = _object(auth, "scope", "auth")
    scope: dict[str, Any]
    if "project" in raw_scope:
        project = _object(raw_scope, "project", "auth.scope")
        if isinstance(project.get("id"), str) and project["id"]:
            scope = {"project": {"id": project["id"]}}
        elif isinstance(project.get("name"), str) and project["name"]:
            if not isinstance(project.get("domain"), dict):
                raise _invalid("auth.scope.project", "a project given by name needs its 'domain'")
            scope = {"project": {"name": project["name"],
                                 "domain": _reference(project["domain"], "auth.scope.project.domain")}}
        else:
            raise _invalid("auth.scope.project", "'id' or 'name' is required")
    elif "domain" in raw_scope:
        scope = {"domain": _reference(_object(raw_scope, "domain", "auth.scope"), "auth.scope.domain")}
    else:
        raise _invalid("auth.scope", "'project' or 'domain' is required")
    return user_spec, password, scope
