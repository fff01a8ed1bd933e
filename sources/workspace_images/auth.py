"""Authentication of Workspace and IAM requests: fixed token, IAM password tokens, AK/SK signing."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from requests import PreparedRequest, Response
from requests.auth import AuthBase

from .failures import error_text, parse_error_body, redirect_target
from .safe_text import add_secrets

logger = logging.getLogger("workspace_images")

SIGNING_ALGORITHM = "SDK-HMAC-SHA256"
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
SIGNED_HEADER_NAMES = ("content-type", "host", "x-project-id", "x-sdk-date", "x-security-token")
"""Headers covered by the signature when present; the transport may add others, unsigned."""

TOKEN_RENEW_MARGIN = timedelta(minutes=10)
"""A cached IAM token is renewed when it expires within this margin (or within a quarter
of its lifetime, for tokens that live less than 40 minutes)."""


class TokenAuth(AuthBase):
    """Sends a fixed IAM token in `X-Auth-Token`.

    The token is kept out of `repr`, so it does not reach logs or error messages.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["X-Auth-Token"] = self._token
        return request

    def __repr__(self) -> str:
        return "TokenAuth(token=***)"


# --- AK/SK signing ---------------------------------------------------------------------------


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """Each path segment percent-encoded, with a trailing `/` (for signing only)."""
    uri = "/".join(_encode(segment) for segment in unquote(path or "/").split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query: str) -> str:
    """Pairs sorted by key then value, each key and value encoded the same way, joined by `&`."""
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{_encode(key)}={_encode(value)}" for key, value in pairs)


def signature(
    secret_key: str,
    method: str,
    url: str,
    headers: Mapping[str, Union[str, bytes]],
    body: Optional[bytes],
    signed_headers: Iterable[str],
) -> str:
    """The SDK-HMAC-SHA256 signature of a request, as Huawei's SDK and gateway compute it.

    Args:
        secret_key: The SK.
        method: HTTP method.
        url: Full URL, query included (percent-encoded as it is sent).
        headers: Request headers; must hold `X-Sdk-Date` and every signed header.
        body: Request body (None or empty for none).
        signed_headers: Lower-case names of the headers to sign, sorted.

    Returns:
        The hex signature.
    """
    lowered = {k.lower(): (v.decode("latin-1") if isinstance(v, bytes) else v).strip() for k, v in headers.items()}
    names = list(signed_headers)
    parts = urlsplit(url)
    canonical_headers = "".join(f"{name}:{lowered[name]}\n" for name in names)
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    canonical_request = "\n".join(
        [method.upper(), canonical_uri(parts.path), canonical_query(parts.query), canonical_headers,
         ";".join(names), payload_hash]
    )
    string_to_sign = "\n".join(
        [SIGNING_ALGORITHM, lowered["x-sdk-date"], hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()]
    )
    return hmac.new(secret_key.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class AkSkAuth(AuthBase):
    """Signs each request with an AK/SK pair (SDK-HMAC-SHA256), as Huawei's SDK does.

    Adds `X-Sdk-Date`, `Host`, `X-Project-Id` (Workspace calls) and `X-Security-Token`
    (temporary credentials), then `Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...`.
    """

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        project_id: Optional[str] = None,
        security_token: Optional[str] = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._project_id = project_id
        self._security_token = security_token
        self._clock = clock

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        headers = request.headers
        for name in list(headers):
            if name.lower() in ("authorization", "x-sdk-date"):
                del headers[name]
        headers["X-Sdk-Date"] = self._clock().strftime(SDK_DATE_FORMAT)
        headers["Host"] = urlsplit(request.url or "").netloc
        if self._project_id:
            headers["X-Project-Id"] = self._project_id
        if self._security_token:
            headers["X-Security-Token"] = self._security_token
        signed = signed_header_names(headers)
        body = request.body.encode("utf-8") if isinstance(request.body, str) else request.body
        if body is not None and not isinstance(body, bytes):
            raise TypeError("AK/SK signing needs the request body whole (bytes or text), not a stream")
        value = signature(self._secret_key, request.method or "GET", request.url or "", headers, body, signed)
        headers["Authorization"] = (
            f"{SIGNING_ALGORITHM} Access={self._access_key}, SignedHeaders={';'.join(signed)}, Signature={value}"
        )
        return request

    def __repr__(self) -> str:
        return "AkSkAuth(access_key=***, secret_key=***)"


# --- IAM password tokens ---------------------------------------------------------------------


class CredentialsRejected(Exception):
    """IAM refused the user name, password or account: a configuration error, tried once per run."""


class IamError(Exception):
    """IAM answered an error other than wrong credentials (or did not answer)."""

    def __init__(self, message: str, http_status: Optional[int] = None, error_code: Optional[str] = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code


def parse_expires_at(value: Optional[str]) -> Optional[datetime]:
    """Parse IAM's `expires_at` (`2020-01-04T09:05:22.701000Z`)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


class IamTokenProvider:
    """Issues IAM tokens with a user name and password, one per scope, cached for the run.

    A token is renewed when it expires within TOKEN_RENEW_MARGIN, or when the caller
    says the API refused it as expired. A rejected password is remembered: IAM is asked
    once per run, so a wrong password cannot lock the user.
    """

    def __init__(
        self,
        iam_endpoint: str,
        user_name: str,
        password: str,
        domain_name: str,
        post: Callable[..., Response],
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._iam_endpoint = iam_endpoint
        self._user_name = user_name
        self._password = password
        self._domain_name = domain_name
        self._post = post
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: Dict[str, Tuple[str, Optional[datetime]]] = {}
        self._renew_at: Dict[str, datetime] = {}
        self._rejected: Optional[str] = None

    def _scope(self, project_id: Optional[str]) -> Dict[str, object]:
        if project_id:
            return {"project": {"id": project_id}}
        return {"domain": {"name": self._domain_name}}

    def token(self, project_id: Optional[str] = None, region: Optional[str] = None) -> str:
        """A valid token scoped to `project_id` (to the account's domain when None)."""
        key = project_id or ""
        with self._lock:
            if self._rejected:
                raise CredentialsRejected(self._rejected)
            cached = self._tokens.get(key)
            if cached and (key not in self._renew_at or self._clock() < self._renew_at[key]):
                return cached[0]
            issued_at = self._clock()
            token, expires_at = self._issue(project_id, region)
            self._tokens[key] = (token, expires_at)
            self._renew_at.pop(key, None)
            if expires_at is not None:
                margin = min(TOKEN_RENEW_MARGIN, max(expires_at - issued_at, timedelta(0)) / 4)
                self._renew_at[key] = expires_at - margin
            return token

    def invalidate(self, project_id: Optional[str] = None) -> None:
        """Forget the cached token of a scope (the API said it expired)."""
        with self._lock:
            self._tokens.pop(project_id or "", None)
            self._renew_at.pop(project_id or "", None)

    def _issue(self, project_id: Optional[str], region: Optional[str]) -> Tuple[str, Optional[datetime]]:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._user_name,
                            "password": self._password,
                            "domain": {"name": self._domain_name},
                        }
                    },
                },
                "scope": self._scope(project_id),
            }
        }
        url = iam_url(self._iam_endpoint, region) + "/v3/auth/tokens"
        try:
            response = self._post(url, json=body)
        except Exception as exc:  # requests' errors after dlt's retries
            raise IamError(f"IAM at {url} did not answer: {exc.__class__.__name__}") from None
        if 300 <= response.status_code < 400:
            raise IamError(
                f"IAM at {url} answered HTTP {response.status_code} with a redirect to "
                f"{redirect_target(response)}: not followed, the password is never sent to another "
                "address; if that is the right IAM, set iam_endpoint to it",
                response.status_code,
            )
        if response.status_code in (401, 403):
            self._rejected = (
                f"IAM rejected user {self._user_name!r} of account {self._domain_name!r} "
                f"(HTTP {response.status_code}: {error_text(response)}): check user_name, password and "
                "domain_name; the password was tried once, to avoid locking the user"
            )
            raise CredentialsRejected(self._rejected)
        if response.status_code != 201 or not response.headers.get("X-Subject-Token"):
            raise IamError(
                f"IAM token request failed: HTTP {response.status_code}: {error_text(response)}",
                response.status_code,
                parse_error_body(response)[0],
            )
        try:
            expires = parse_expires_at(response.json()["token"]["expires_at"])
        except (ValueError, KeyError, TypeError):
            expires = None
        add_secrets(response.headers["X-Subject-Token"])
        scope = f"project {project_id}" if project_id else f"account {self._domain_name}"
        logger.info("IAM token issued for %s%s", scope, f", expires {expires:%Y-%m-%d %H:%M}Z" if expires else "")
        return response.headers["X-Subject-Token"], expires

    def __repr__(self) -> str:
        return f"IamTokenProvider(user={self._user_name!r}, domain={self._domain_name!r}, password=***)"


def iam_url(iam_endpoint: str, region: Optional[str]) -> str:
    """The IAM endpoint, `{region}` filled in when the template has it."""
    if "{region}" in iam_endpoint:
        return iam_endpoint.format(region=region or "cn-north-4")
    return iam_endpoint


class IamTokenAuth(AuthBase):
    """Sends the password-mode IAM token of one project in `X-Auth-Token`."""

    def __init__(self, provider: IamTokenProvider, project_id: str, region: Optional[str] = None) -> None:
        self.provider = provider
        self.project_id = project_id
        self.region = region

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["X-Auth-Token"] = self.provider.token(self.project_id, self.region)
        return request

    def renew(self) -> None:
        """Drop the cached token, so the next request gets a new one."""
        self.provider.invalidate(self.project_id)

    def __repr__(self) -> str:
        return f"IamTokenAuth(project_id={self.project_id!r}, token=***)"


def signed_header_names(headers: Iterable[str]) -> List[str]:
    """The names, lower-cased and sorted, that AkSkAuth signs among `headers`."""
    return sorted(n for n in (h.lower() for h in headers) if n in SIGNED_HEADER_NAMES)
