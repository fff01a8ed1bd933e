"""IAM's tokens: ``POST /v3/auth/tokens``, granted tokens, temporary AK/SK, and locked users.

The Keystone request and answer of ``POST /v3/auth/tokens``, tokens granted
without a request, temporary AK/SK credentials, and users locked after wrong
passwords.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .accounts import Accounts
from .identity import AuthError, IamProject, SimAccount

LOGGER = logging.getLogger("workspace_images.simulator")

DEFAULT_TOKEN_TTL = 86400.0
"""Lifetime of an issued token, seconds (IAM's is 24 hours)."""
DEFAULT_TEMPORARY_TTL = 900.0
"""Lifetime of temporary AK/SK credentials, seconds (IAM's minimum is 15 minutes)."""

PASSWORD_ATTEMPTS = 5
"""Wrong passwords in a row that lock a user."""
USER_LOCK_SECONDS = 900.0
TOKEN_BYTES = 960
ROLES = ({"id": "0", "name": "te_admin"}, {"id": "1", "name": "op_gated_workspace"})

WRONG_PASSWORD = "The username or password is wrong."
ACCOUNT_LOCKED = "The account is locked."
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass
class IssuedToken:
    """A token ``POST /v3/auth/tokens`` issued (or a test granted): its account, scope and expiry."""

    domain: str
    project_id: str | None
    expires_at: float


@dataclass
class TemporaryKey:
    """A temporary AK's secret key, security token, account and expiry."""

    secret_key: str
    security_token: str
    domain: str
    expires_at: float


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).strftime(TIME_FORMAT)


def _new_token() -> str:
    return "MII" + base64.b64encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii")


class Tokens:
    """IAM's token desk: issues, grants, expires and unlocks; keeps tokens, temporary keys and locked users.

    It reads the accounts and projects from the directory. Every public
    method takes the lock.

    Args:
        directory: The accounts and projects.
        lock: The lock shared with the simulator.
        token_ttl: Lifetime of issued tokens, seconds.
        fixed_token: A token that never expires, valid for every project of
            the default account.
        clock: The server clock, epoch seconds.

    Attributes:
        fixed_token: The fixed ``X-Auth-Token``: never expires, valid for
            every project of the default account (Workspace and IAM listings).
        clock: The server clock for expiry and locks; may be replaced.
    """

    def __init__(self, directory: Accounts, lock: threading.RLock, token_ttl: float, fixed_token: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self._lock = lock
        self.clock = clock
        self.token_ttl = token_ttl
        self.fixed_token = fixed_token
        self._tokens: dict[str, IssuedToken] = {}
        self._temporary: dict[str, TemporaryKey] = {}
        self._password_failures: dict[tuple[str, str], int] = {}
        self._users_locked_until: dict[tuple[str, str], float] = {}

    @property
    def token_ttl(self) -> float:
        """Lifetime in seconds of tokens issued from now on (> 0)."""
        return self._token_ttl

    @token_ttl.setter
    def token_ttl(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"token_ttl must be > 0, got {seconds}")
        self._token_ttl = float(seconds)

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
            expires_at = now + self.token_ttl
            token = self._remember(account.domain, project.project_id if project else None, expires_at)
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
            account = next((a for a in self.directory.accounts if a.user_id == user_spec["id"]), None)
        else:
            candidate = self._account_named(user_spec["domain"])
            if candidate is not None and candidate.user == user_spec["name"]:
                account = candidate
        if account is None:
            LOGGER.info("IAM refused a token: unknown user")
            raise AuthError.keystone(401, WRONG_PASSWORD)
        key = (account.domain, account.user)
        locked_until = self._users_locked_until.get(key)
        if locked_until is not None:
            if locked_until > now:
                LOGGER.info("IAM refused a token: user %s/%s is locked", *key)
                raise AuthError.keystone(401, ACCOUNT_LOCKED)
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
            raise AuthError.keystone(401, WRONG_PASSWORD)
        self._password_failures.pop(key, None)
        return account

    def _scope(self, account: SimAccount, scope: dict[str, Any]) -> IamProject | None:
        if "domain" in scope:
            wanted = scope["domain"]
            if wanted.get("name", account.domain) != account.domain or \
                    wanted.get("id", account.domain_id) != account.domain_id:
                label = wanted.get("name") or wanted.get("id")
                known = any(label in (a.domain, a.domain_id) for a in self.directory.accounts)
                if not known:
                    raise AuthError.keystone(404, f"Could not find domain: {label}.")
                raise AuthError.keystone(401, f"User {account.user_id} has no access to domain {label}.")
            return None
        wanted = scope["project"]
        if "id" in wanted:
            project = self.directory.project(wanted["id"])
            label = wanted["id"]
        else:
            owner = self._account_named(wanted["domain"])
            label = wanted["name"]
            project = None
            if owner is not None:
                project = next((p for p in self.directory.projects(owner.domain) if p.name == wanted["name"]), None)
        if project is None:
            raise AuthError.keystone(404, f"Could not find project: {label}.")
        if project.domain != account.domain:
            raise AuthError.keystone(401, f"User {account.user_id} has no access to project {project.project_id}.")
        if not project.enabled:
            raise AuthError.keystone(401, f"The project {project.project_id} is disabled.")
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
                project = self.directory.project(project_id)
                if project is None:
                    raise KeyError(f"unknown project {project_id}")
                if domain is not None and domain != project.domain:
                    raise ValueError(f"project {project_id} belongs to account {project.domain}, not {domain}")
                domain = project.domain
            account = self.directory.account(domain)
            return self._remember(account.domain, project_id, self.clock() + (ttl or self.token_ttl))

    def _remember(self, domain: str, project_id: str | None, expires_at: float) -> str:
        token = _new_token()
        self._tokens[token] = IssuedToken(domain, project_id, expires_at)
        return token

    def _account_named(self, domain: dict[str, str]) -> SimAccount | None:
        """Return the account a Keystone domain reference (``name`` or ``id``) names, or None."""
        if "name" in domain:
            return self.directory.find_account(domain["name"])
        return next((a for a in self.directory.accounts if a.domain_id == domain.get("id")), None)

    def issued(self, token: str) -> IssuedToken | None:
        """Return what an issued token is for (the fixed token is not one), or None."""
        with self._lock:
            return self._tokens.get(token)

    def temporary_key(self, access_key: str) -> TemporaryKey | None:
        """Return a temporary AK's secret, security token, account and expiry, or None."""
        with self._lock:
            return self._temporary.get(access_key)

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
            account = self.directory.account(domain)
            access_key = "SIMTMP" + "".join(secrets.choice(alphabet) for _ in range(14))
            secret_key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))
            security_token = "gQpzaW0tc3RzLXRva2Vu" + base64.b64encode(secrets.token_bytes(600)).decode("ascii")
            self._temporary[access_key] = TemporaryKey(secret_key, security_token, account.domain,
                                                        self.clock() + ttl)
            return access_key, secret_key, security_token


def _object(parent: Any, key: str, field: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise AuthError.invalid(field, f"'{key}' is a required object")
    return value


def _reference(value: dict[str, Any], field: str) -> dict[str, str]:
    ref = {k: value[k] for k in ("id", "name") if isinstance(value.get(k), str) and value[k]}
    if not ref:
        raise AuthError.invalid(field, "'id' or 'name' is required")
    return ref


def _parse_token_request(body: bytes) -> tuple[dict[str, Any], str, dict[str, Any]]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AuthError.keystone(400, "The request body is not valid JSON.") from None
    auth = _object(data, "auth", "auth")
    identity = _object(auth, "identity", "auth.identity")
    methods = identity.get("methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise AuthError.invalid("auth.identity.methods", "a non-empty list of strings is required")
    if "password" not in methods:
        raise AuthError.keystone(401, "Attempted to authenticate with an unsupported method.")
    user = _object(_object(identity, "password", "auth.identity"), "user", "auth.identity.password")
    password = user.get("password")
    if not isinstance(password, str) or not password:
        raise AuthError.invalid("auth.identity.password.user", "'password' is a required property")
    if isinstance(user.get("id"), str) and user["id"]:
        user_spec: dict[str, Any] = {"id": user["id"]}
    else:
        if not isinstance(user.get("name"), str) or not user["name"]:
            raise AuthError.invalid("auth.identity.password.user", "'name' or 'id' is required")
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
                raise AuthError.invalid("auth.scope.project", "a project given by name needs its 'domain'")
            scope = {"project": {"name": project["name"],
                                 "domain": _reference(project["domain"], "auth.scope.project.domain")}}
        else:
            raise AuthError.invalid("auth.scope.project", "'id' or 'name' is required")
    elif "domain" in raw_scope:
        scope = {"domain": _reference(_object(raw_scope, "domain", "auth.scope"), "auth.scope.domain")}
    else:
        raise AuthError.invalid("auth.scope", "'project' or 'domain' is required")
    return user_spec, password, scope
