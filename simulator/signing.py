"""Verification of ``SDK-HMAC-SHA256`` request signatures (Huawei Cloud AK/SK).

The gateway recomputes the signature from the request exactly as it arrived:

- ``CanonicalRequest`` is ``METHOD\\nURI\\nQUERY\\nHEADERS\\nSIGNED_HEADERS\\nPAYLOAD_HASH``;
- ``URI``: the received path, percent-decoded, split on ``/``, each segment
  percent-encoded (everything but ``A-Z a-z 0-9 - _ . ~``) and a ``/``
  appended when it does not end with one;
- ``QUERY``: every ``key=value`` pair of the received query string (repeated
  keys included, a key without ``=`` has an empty value), decoded (``+`` is a
  space, as the gateway's form decoding has it), sorted by key then value,
  each side encoded like a path segment, joined by ``&``;
- ``HEADERS``: ``name:value`` (value stripped) for each name of the
  ``SignedHeaders`` list, in that order, each line ending in ``\\n``;
- ``PAYLOAD_HASH``: hex SHA-256 of the body; an empty body hashes to
  :data:`EMPTY_BODY_SHA256`; a non-empty body with an
  ``X-Sdk-Content-Sha256`` header (``UNSIGNED-PAYLOAD``) uses that value;
- ``StringToSign`` is ``SDK-HMAC-SHA256\\n{X-Sdk-Date}\\n{hex(sha256(CanonicalRequest))}``
  and the signature is ``hex(HMAC-SHA256(SK, StringToSign))``.

Header values travel as ISO-8859-1 on the wire; values that are really UTF-8
are decoded as UTF-8 before they are signed, as the SDK signs the text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
CONTENT_SHA256_HEADER = "X-Sdk-Content-Sha256"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
REDACTED_HEADERS = frozenset({"x-security-token", "x-auth-token", "authorization"})
"""Signed headers whose values :func:`describe` replaces with ``******``."""


class Headers(Protocol):
    """Anything with case-sensitive or -insensitive ``items()`` of header pairs."""

    def items(self) -> Iterable[tuple[str, str]]:
        """Return ``(name, value)`` pairs."""
        ...


@dataclass(frozen=True)
class Authorization:
    """The parts of an ``Authorization: SDK-HMAC-SHA256 ...`` header.

    Attributes:
        access_key: The ``Access`` value (the AK).
        signed_headers: The ``SignedHeaders`` names, in the order sent.
        signature: The ``Signature`` value (hex).
    """

    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization:
    """Parse an ``SDK-HMAC-SHA256`` Authorization header.

    Args:
        value: The header value, e.g.
            ``SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=ab12...``.

    Returns:
        Its parts.

    Raises:
        ValueError: The value is not an ``SDK-HMAC-SHA256`` authorization.
    """
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise ValueError(f"the signing algorithm {algorithm!r} is not supported")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, field_value = item.strip().partition("=")
        if sep:
            fields[name.strip()] = field_value.strip()
    missing = [name for name in ("Access", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise ValueError(f"the Authorization header lacks {', '.join(missing)}")
    signed = tuple(name.strip().lower() for name in fields["SignedHeaders"].split(";") if name.strip())
    return Authorization(fields["Access"], signed, fields["Signature"].lower())


def encode(raw: bytes | str) -> str:
    """Percent-encode everything but unreserved characters (``A-Z a-z 0-9 - _ . ~``).

    Args:
        raw: Text (encoded as UTF-8) or bytes.

    Returns:
        The encoded text.
    """
    return quote(raw, safe="~")


def canonical_uri(path: str) -> str:
    """Return the canonical URI of a received path.

    Args:
        path: The path as received (percent-encoded, without the query).

    Returns:
        Each segment decoded and re-encoded, with a trailing ``/``.
    """
    segments = unquote_to_bytes(path).split(b"/")
    uri = "/".join(encode(segment) for segment in segments)
    return uri if uri.endswith("/") else uri + "/"


def query_pairs(query: str) -> list[tuple[bytes, bytes]]:
    """Decode a received query string into its pairs, in the order sent.

    Args:
        query: The raw query string (after ``?``).

    Returns:
        ``(key, value)`` byte pairs; repeated keys appear once per occurrence.
    """
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote_to_bytes(key.replace("+", " ")), unquote_to_bytes(value.replace("+", " "))))
    return pairs


def canonical_query(query: str) -> str:
    """Return the canonical query string of a received query string.

    Args:
        query: The raw query string (after ``?``).

    Returns:
        Sorted ``key=value`` pairs, each side encoded, joined by ``&``.
    """
    return "&".join(f"{encode(key)}={encode(value)}" for key, value in sorted(query_pairs(query)))


def header_value(headers: Headers, name: str) -> str | None:
    """Return the first value of a header, as the text the client signed.

    Args:
        headers: The received headers.
        name: The header name (any case).

    Returns:
        The value, decoded as UTF-8 when its ISO-8859-1 bytes are UTF-8; None
        when the header is absent.
    """
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            try:
                return value.encode("iso-8859-1").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                return value
    return None


def canonical_headers(headers: Headers, signed_headers: Iterable[str], *, redact: bool = False) -> str:
    """Return the canonical headers block.

    Args:
        headers: The received headers.
        signed_headers: Lower-case names, in the order of ``SignedHeaders``.
        redact: Replace the values of :data:`REDACTED_HEADERS` with ``******``.

    Returns:
        One ``name:value`` line per signed header, each ending in ``\\n``; a
        signed header that was not sent has an empty value.
    """
    lines = []
    for name in signed_headers:
        value = (header_value(headers, name) or "").strip()
        if redact and name in REDACTED_HEADERS and value:
            value = "******"
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def payload_hash(headers: Headers, body: bytes) -> str:
    """Return the payload part of the canonical request.

    Args:
        headers: The received headers.
        body: The received body.

    Returns:
        :data:`EMPTY_BODY_SHA256` for no body, the ``X-Sdk-Content-Sha256``
        value when sent, else the hex SHA-256 of the body.
    """
    if not body:
        return EMPTY_BODY_SHA256
    declared = header_value(headers, CONTENT_SHA256_HEADER)
    if declared:
        return declared
    return hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Headers,
    signed_headers: Iterable[str],
    body: bytes,
    *,
    redact: bool = False,
) -> str:
    """Build the canonical request of a received request.

    Args:
        method: The HTTP method.
        path: The raw path.
        query: The raw query string.
        headers: The received headers.
        signed_headers: Lower-case names from ``SignedHeaders``, in order.
        body: The received body.
        redact: Hide secret header values (for error messages only).

    Returns:
        The canonical request.
    """
    signed = list(signed_headers)
    return "\n".join((
        method.upper(),
        canonical_uri(path),
        canonical_query(query),
        canonical_headers(headers, signed, redact=redact),
        ";".join(signed),
        payload_hash(headers, body),
    ))


def string_to_sign(sdk_date: str, request: str) -> str:
    """Return the string to sign.

    Args:
        sdk_date: The ``X-Sdk-Date`` value.
        request: The canonical request.

    Returns:
        ``SDK-HMAC-SHA256\\n{sdk_date}\\n{hex(sha256(request))}``.
    """
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(request.encode('utf-8')).hexdigest()}"


def signature(secret_key: str, text: str) -> str:
    """Return ``hex(HMAC-SHA256(secret_key, text))``.

    Args:
        secret_key: The SK.
        text: The string to sign.

    Returns:
        The hex signature.
    """
    return hmac.new(secret_key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_sdk_date(value: str) -> dt.datetime:
    """Parse an ``X-Sdk-Date`` value.

    Args:
        value: Like ``20260101T120000Z``.

    Returns:
        An aware UTC datetime.

    Raises:
        ValueError: The value is not in :data:`DATE_FORMAT`.
    """
    return dt.datetime.strptime(value.strip(), DATE_FORMAT).replace(tzinfo=dt.timezone.utc)


def verify(
    secret_key: str,
    authorization: Authorization,
    method: str,
    path: str,
    query: str,
    headers: Headers,
    body: bytes,
) -> bool:
    """Check a request's signature against the one recomputed with ``secret_key``.

    Args:
        secret_key: The SK of the request's AK.
        authorization: The parsed Authorization header.
        method: The HTTP method.
        path: The raw path.
        query: The raw query string.
        headers: The received headers (``X-Sdk-Date`` must be among them).
        body: The received body.

    Returns:
        Whether the signatures are equal.
    """
    sdk_date = (header_value(headers, DATE_HEADER) or "").strip()
    request = canonical_request(method, path, query, headers, authorization.signed_headers, body)
    expected = signature(secret_key, string_to_sign(sdk_date, request))
    return hmac.compare_digest(expected, authorization.signature)


def describe(authorization: Authorization, method: str, path: str, query: str, headers: Headers, body: bytes) -> str:
    """Describe what the gateway signed, for a signature failure message.

    Secret header values are replaced with ``******``; newlines become ``|``.

    Args:
        authorization: The parsed Authorization header.
        method: The HTTP method.
        path: The raw path.
        query: The raw query string.
        headers: The received headers.
        body: The received body.

    Returns:
        ``canonicalRequest:...`` as one line.
    """
    request = canonical_request(method, path, query, headers, authorization.signed_headers, body, redact=True)
    return "canonicalRequest:" + request.replace("\n", "|")
