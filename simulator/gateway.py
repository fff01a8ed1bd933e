"""The API gateway's checks of each request: tokens, AK/SK signatures, ``X-Sdk-Date``, locked keys.

They decide whether a request may read a Workspace project, and which account
an IAM project listing call acts for.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from collections.abc import Callable

from . import signing
from .accounts import Accounts
from .identity import AuthError, Caller, IamProject, SimAccount
from .signing import Headers
from .tokens import Tokens

LOGGER = logging.getLogger("workspace_images.simulator")

KEY_ATTEMPTS = 5
"""Bad signatures in a row an AK may have; the next one locks it."""
KEY_LOCK_SECONDS = 300.0
MAX_CLOCK_SKEW = 900.0
"""Largest accepted difference between ``X-Sdk-Date`` and the server clock, seconds."""

INCORRECT = "Incorrect IAM authentication information"
MISSING_CREDENTIALS = f"{INCORRECT}: the X-Auth-Token header is missing"
DECRYPT_FAIL = f"{INCORRECT}: decrypt token fail"
TOKEN_MUST_BE_UPDATED = "The token must be updated."
UNKNOWN_AK = f"{INCORRECT}: Get secretKey failed,ak:******,err:ak not exist"
AK_LOCKED = f"{INCORRECT}: AK access failed to reach the limit,forbidden."
NEEDS_AUTHENTICATION = "The request you have made requires authentication."


class Gateway:
    """The gateway's checks of each request, with the AK locks they keep.

    It reads accounts and projects from the directory, and tokens and
    temporary keys from the token desk. Every public method takes the lock.

    Args:
        directory: The accounts and projects.
        tokens: The issued tokens and temporary keys.
        lock: The lock shared with the simulator.
        clock: The server clock, epoch seconds.

    Attributes:
        clock: The server clock for expiry, locks and ``X-Sdk-Date``; may be replaced.
    """

    def __init__(self, directory: Accounts, tokens: Tokens, lock: threading.RLock,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.tokens = tokens
        self._lock = lock
        self.clock = clock
        self._signature_failures: dict[str, int] = {}
        self._keys_locked_until: dict[str, float] = {}

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
            raise AuthError.gateway(401, "0301", MISSING_CREDENTIALS)

    def _workspace_token(self, value: str, project_id: str) -> Caller:
        mismatch = f"{INCORRECT}: the project of the token does not match project {project_id} in the URL"
        if value == self.tokens.fixed_token:
            account = self.directory.account()
            target = self._workspace_project(project_id, account)
            if target is None:
                raise AuthError.gateway(401, "0301", mismatch)
            self._check_enabled(target)
            return Caller(account)
        token = self.tokens.issued(value)
        if token is None:
            raise AuthError.gateway(401, "0301", DECRYPT_FAIL)
        if token.expires_at <= self.clock():
            raise AuthError.gateway(401, "0307", TOKEN_MUST_BE_UPDATED)
        account = self.directory.account(token.domain)
        if token.project_id is None:
            raise AuthError.gateway(401, "0301", f"{mismatch} (the token is scoped to domain {token.domain})")
        if token.project_id != project_id:
            scoped = self._known_project(token.project_id)
            target = self.directory.project(project_id)
            if target is not None and target.region is not None and scoped.region != target.region:
                raise AuthError.gateway(401, "0307", TOKEN_MUST_BE_UPDATED)
            raise AuthError.gateway(401, "0301", mismatch)
        target = self._known_project(project_id)
        if target.region is None:
            raise AuthError.gateway(401, "0307", TOKEN_MUST_BE_UPDATED)
        self._check_enabled(target)
        return Caller(account)

    def _known_project(self, project_id: str) -> IamProject:
        """Return a project a token is scoped to or was accepted for: it exists."""
        project = self.directory.project(project_id)
        if project is None:
            raise KeyError(project_id)
        return project

    def _workspace_project(self, project_id: str, account: SimAccount) -> IamProject | None:
        """Return the account's Workspace project (not its ``MOS``) of that ID, or None."""
        target = self.directory.project(project_id)
        if target is None or target.domain != account.domain or target.region is None:
            return None
        return target

    @staticmethod
    def _check_enabled(project: IamProject) -> None:
        if not project.enabled:
            raise AuthError.gateway(403, "0302", f"The IAM user is not authorized to access the API: "
                                                 f"project {project.project_id} is disabled.")

    def _check_signed_project(self, caller: Caller, headers: Headers, project_id: str) -> None:
        declared = (signing.header_value(headers, "X-Project-Id") or "").strip() or None
        target = self._workspace_project(project_id, caller.account)
        if target is None:
            raise AuthError.gateway(401, "0301", f"{INCORRECT}: project {project_id} in the URL does not "
                                                 f"belong to the account of the access key")
        if declared is None:
            declared = next((p.project_id for p in self.directory.projects(target.domain)
                             if p.name == target.region), None)
        if declared != project_id:
            raise AuthError.gateway(401, "0301", f"{INCORRECT}: the project of the request "
                                                 f"({declared or 'none'}) does not match project {project_id} "
                                                 f"in the URL")
        self._check_enabled(target)

    def _verify_signature(self, method: str, path: str, query: str, headers: Headers, body: bytes) -> Caller:
        try:
            authorization = signing.parse_authorization(signing.header_value(headers, "Authorization") or "")
        except ValueError as exc:
            raise AuthError.gateway(401, "0301", f"{INCORRECT}: {exc}") from None
        access_key = authorization.access_key
        now = self.clock()
        temporary = self.tokens.temporary_key(access_key)
        account = self.directory.account_with_key(access_key)
        if temporary is not None:
            account = self.directory.account(temporary.domain)
            secret_key = temporary.secret_key
        elif account is not None:
            secret_key = account.secret_key
        else:
            raise AuthError.gateway(401, "0301", UNKNOWN_AK)
        locked_until = self._keys_locked_until.get(access_key)
        if locked_until is not None:
            if locked_until > now:
                raise AuthError.gateway(401, "0301", AK_LOCKED)
            del self._keys_locked_until[access_key]
        sdk_date = signing.header_value(headers, signing.DATE_HEADER)
        if not sdk_date:
            raise AuthError.gateway(401, "0301", f"{INCORRECT}: the {signing.DATE_HEADER} header is missing")
        try:
            signed_at = signing.parse_sdk_date(sdk_date)
        except ValueError:
            raise AuthError.gateway(401, "0301", f"{INCORRECT}: the {signing.DATE_HEADER} header {sdk_date!r} "
                                                 f"is not like 20260101T120000Z") from None
        if abs(signed_at.timestamp() - now) > MAX_CLOCK_SKEW:
            server_time = dt.datetime.fromtimestamp(now, dt.timezone.utc).strftime(signing.DATE_FORMAT)
            raise AuthError.gateway(401, "0301", f"{INCORRECT}: signature expired, signature "
                                                 f"time:{sdk_date.strip()},server time:{server_time}")
        security_token = (signing.header_value(headers, "X-Security-Token") or "").strip()
        if temporary is not None:
            if not security_token:
                raise AuthError.gateway(401, "0301", f"{INCORRECT}: the X-Security-Token header is required "
                                                     f"with a temporary access key")
            if not secrets.compare_digest(security_token.encode(), temporary.security_token.encode()):
                raise AuthError.gateway(401, "0301", f"{INCORRECT}: the security token is invalid")
            if temporary.expires_at <= now:
                raise AuthError.gateway(401, "0301", f"{INCORRECT}: the security token has expired")
        elif security_token:
            raise AuthError.gateway(401, "0301", f"{INCORRECT}: the security token is invalid")
        if not signing.verify(secret_key, authorization, method, path, query, headers, body):
            failures = self._signature_failures.get(access_key, 0) + 1
            self._signature_failures[access_key] = failures
            if failures > KEY_ATTEMPTS:
                self._keys_locked_until[access_key] = now + KEY_LOCK_SECONDS
                self._signature_failures.pop(access_key, None)
                LOGGER.warning("gateway locked an access key of %s for %g s after %d bad signatures",
                               account.domain, KEY_LOCK_SECONDS, failures)
                raise AuthError.gateway(401, "0301", AK_LOCKED)
            detail = signing.describe(authorization, method, path, query, headers, body)
            raise AuthError.gateway(401, "0301", f"{INCORRECT}: verify aksk signature fail, {detail}")
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
                if token == self.tokens.fixed_token:
                    return Caller(self.directory.account())
                issued = self.tokens.issued(token)
                if issued is None or issued.expires_at <= self.clock():
                    raise AuthError.keystone(401, NEEDS_AUTHENTICATION)
                return Caller(self.directory.account(issued.domain))
            if allow_signature and signing.header_value(headers, "Authorization"):
                return self._verify_signature(method, path, query, headers, body)
            raise AuthError.keystone(401, NEEDS_AUTHENTICATION)

    def unlock_keys(self) -> None:
        """Unlock AKs locked after more than 5 bad signatures in a row (5 minutes anyway) and forget every count."""
        with self._lock:
            self._keys_locked_until.clear()
            self._signature_failures.clear()
