"""How the simulator answers a request: redirects, IAM's calls and ``GET /v2/{project_id}/images``.

A redirect armed for the path answers first; else IAM's three calls or the
images API answer, each with its bodies and error shapes.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

from .data import Image, sort_images
from .faults import DRIP_KINDS, RANDOM_FAULTS, STATUS_ERRORS, Fault
from .identity import AuthError
from .workspace import _ProjectState, serialise

if TYPE_CHECKING:
    from .server import Simulator

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


@dataclass
class _Response:
    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delivery: str | None = None
    """None sends the answer at once; ``drip``, ``drip_headers``, ``silent`` or ``gzip_bomb`` (see ``fail_project``)."""
    interval: float = 0.0
    inflated: int = 0
    """Bytes a ``gzip_bomb`` body inflates to; the handler compresses them as it sends."""


class _BadRequest(Exception):
    pass


def handle(
    sim: Simulator, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
) -> tuple[_Response, str | None, dict[str, str]]:
    """Answer one request.

    Args:
        sim: The simulator.
        method: The HTTP method.
        target: The request target as sent: path and query.
        headers: The received headers.
        body: The received body.

    Returns:
        The answer (status None: no answer), the project of an images
        request (else None), and the query parameters (first value of each).
    """
    if sim.latency_ms:
        sim._pause(sim.latency_ms / 1000)
    parts = urlsplit(target)
    query = {name: values[0] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    match = IMAGES_PATH.match(parts.path)
    project_id = unquote(match["project_id"]) if match is not None else None
    redirect = _take_redirect(sim, parts.path)
    if redirect is not None:
        return redirect, project_id, query
    if parts.path in IAM_METHODS:
        response = _answer_iam(sim, method, parts.path, parts.query, query, headers, body)
        response.headers["X-IAM-Trace-Id"] = response.headers["X-Request-Id"]
        return response, None, query
    if project_id is None:
        return _error(404, *STATUS_ERRORS[404]), None, query
    if method != "GET":
        response = _error(405, "WKS.0405", f"The method {method} is not allowed for {parts.path}.")
        response.headers["Allow"] = "GET"
        return response, project_id, query
    if not sim._pause(_slow_delay(sim, project_id)):
        return _Response(None), project_id, query
    with sim._lock:
        try:
            sim.iam.authorize_workspace(method, parts.path, parts.query, headers, body, project_id)
        except AuthError as refusal:
            LOGGER.debug("refused an images request for %s: %s", project_id, refusal.message)
            return _refusal(refusal, WORKSPACE_GATEWAY), project_id, query
        state = sim._states.get(project_id)
        if state is None:
            return _error(404, *STATUS_ERRORS[404]), project_id, query
        state.requests += 1
        response = _answer_images(sim, state, query, _echo_text(method, target, headers, body))
        if response.status is not None:
            _set_delivery(state, response)
        if state.hook is not None:
            try:
                state.hook(sim, project_id, state.requests)
            except Exception:
                LOGGER.exception("on_request hook of project %s failed", project_id)
    return response, project_id, query


def _take_redirect(sim: Simulator, path: str) -> _Response | None:
    with sim._lock:
        redirect = next((r for r in sim._redirects if r.active() and path.startswith(r.path_prefix)), None)
        if redirect is None:
            return None
        redirect.consume()
    response = _Response(redirect.status, b"{}", _headers())
    response.headers["Location"] = redirect.location
    return response


def _slow_delay(sim: Simulator, project_id: str) -> float:
    with sim._lock:
        state = sim._states.get(project_id)
        slow = state.take("slow") if state is not None else None
        return slow.interval if slow is not None else 0.0


def _set_delivery(state: _ProjectState, response: _Response) -> None:
    if response.delivery is not None:
        return
    for fault in state.faults:
        if fault.kind in DRIP_KINDS and fault.active():
            fault.consume()
            response.delivery = fault.kind
            response.interval = fault.interval
            return


# IAM


def _answer_iam(
    sim: Simulator,
    method: str,
    path: str,
    raw_query: str,
    query: dict[str, str],
    headers: Mapping[str, str],
    body: bytes,
) -> _Response:
    allowed = IAM_METHODS[path]
    if method != allowed:
        response = _keystone_error(405, f"The method {method} is not allowed for {path}.")
        response.headers["Allow"] = allowed
        return response
    try:
        if path == TOKENS_PATH:
            echoing = _echo_iam(sim, body)
            if echoing:
                return _keystone_error(400, _echo_text(method, path + (f"?{raw_query}" if raw_query else ""),
                                                       headers, body))
            catalog = query.get("nocatalog", "").lower() not in ("true", "1")
            token, answer = sim.iam.issue_token(body, catalog=catalog)
            response = _json(201, answer)
            response.headers["X-Subject-Token"] = token
            return response
        caller = sim.iam.authorize_iam(method, path, raw_query, headers, body,
                                       allow_signature=path == PROJECTS_PATH)
        filters = query if path == PROJECTS_PATH else {}
        per_page, first_next = sim.iam.listing_paging
        if per_page is None:
            projects = sim.iam.listing(caller.account.domain, sim.url, filters)
        else:
            paging = {k: v for k, v in query.items() if k in ("page", "per_page")}
            projects, page, size, more = sim.iam.listing_page(caller.account.domain, sim.url,
                                                              {**filters, **paging})
    except AuthError as refusal:
        LOGGER.debug("IAM refused %s %s: %s", method, path, refusal.message)
        return _refusal(refusal, IAM_GATEWAY)
    if per_page is None:
        self_link = f"{sim.url}{path}" + (f"?{raw_query}" if raw_query and path == PROJECTS_PATH else "")
        return _json(200, {"projects": projects, "links": {"self": self_link, "previous": None, "next": None}})
    kept = [(k, v) for k, v in parse_qsl(raw_query, keep_blank_values=True)
            if k not in ("page", "per_page")] if path == PROJECTS_PATH else []

    def link(number: int) -> str:
        return f"{sim.url}{path}?" + urlencode([("page", number), ("per_page", size), *kept])

    next_link = link(page + 1) if more else None
    if page == 1 and first_next is not None:
        next_link = first_next
    links = {"self": link(page), "previous": link(page - 1) if page > 1 else None, "next": next_link}
    return _json(200, {"projects": projects, "links": links})


def _echo_iam(sim: Simulator, body: bytes) -> bool:
    """Whether a token request is scoped to a project armed with the ``echo_iam`` fault (consumed)."""
    try:
        scope = json.loads(body)["auth"]["scope"]["project"]
        project_id = scope["id"]
    except (ValueError, KeyError, TypeError):
        return False
    with sim._lock:
        state = sim._states.get(project_id) if isinstance(project_id, str) else None
        return state is not None and state.take("echo_iam") is not None


def _echo_text(method: str, target: str, headers: Mapping[str, str], body: bytes) -> str:
    """A request as received, for the ``echo`` faults: request line, headers, blank line, body."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items()), ""]
    return "\r\n".join(lines) + "\r\n" + body.decode("utf-8", errors="replace")


# Workspace images


def _answer_images(sim: Simulator, state: _ProjectState, query: dict[str, str], request: str) -> _Response:
    failing = next((f for f in state.faults if (f.fault is not None or f.kind == "silent") and f.active()),
                   None)
    if failing is not None:
        failing.consume()
        if failing.fault is None:
            return _Response(None, delivery="silent")
        if failing.fault.echo:
            return _error(failing.fault.status, failing.fault.error_code, request)
        return _fault(failing.fault)
    if sim.fault_rate and sim.fault_kinds and sim._fault_rng.random() < sim.fault_rate:
        return _fault(RANDOM_FAULTS[sim._fault_rng.choice(sim.fault_kinds)])
    try:
        limit = _int_param(query, "limit", MAX_LIMIT, MAX_LIMIT)
        offset = _int_param(query, "offset", 0, MAX_OFFSET)
        sort_field = _enum_param(query, "sort_field", SORT_FIELDS)
        sort_type = _enum_param(query, "sort_type", SORT_TYPES)
    except _BadRequest as exc:
        return _error(400, "WKS.0001", str(exc))
    bomb = state.take("gzip_bomb")
    if bomb is not None:
        response = _Response(200, headers=_headers(), delivery="gzip_bomb", inflated=bomb.size)
        response.headers["Content-Encoding"] = "gzip"
        return response
    if state.take("stuck") is not None:
        offset = 0
    oversized = state.take("oversized_page")
    if oversized is not None:
        limit = oversized.size
    matching = [image for image in state.live if _matches(image, query, sim.extra_fields)]
    ordered = sort_images(matching, sort_field, descending=sort_type == "desc")
    page = [serialise(image, sim.extra_fields) for image in ordered[offset:offset + limit]]
    if oversized is not None:
        page = _padded(page, limit)
    lying = state.take("total_count")
    total = lying.total if lying is not None else len(matching)
    body = _json_bytes({"total_count": total, "images": page}, compact=True,
                       truncate=state.take("malformed") is not None)
    return _Response(200, body, _headers())


def _padded(page: list[Image], size: int) -> list[Image]:
    """``page`` made ``size`` images long with copies of its first image (a stand-in when empty) under new ids."""
    template = page[0] if page else {"id": "oversized", "name": "oversized"}
    copies = [{**template, "id": f"{template['id']}-copy-{n}"} for n in range(size - len(page))]
    return page + copies


def _matches(image: Image, query: dict[str, str], extra_fields: Mapping[str, Any]) -> bool:
    for param, field_name in FILTER_FIELDS.items():
        wanted = query.get(param)
        if not wanted:
            continue
        value = image.get(field_name, extra_fields.get(field_name))
        if value is not None and value != wanted:
            return False
    return True


# bodies


def _headers() -> dict[str, str]:
    return {"Content-Type": JSON_CONTENT_TYPE, "X-Request-Id": uuid.uuid4().hex}


def _json(status: int, body: dict[str, Any]) -> _Response:
    return _Response(status, _json_bytes(body), _headers())


def _keystone_error(status: int, message: str) -> _Response:
    title = KEYSTONE_TITLES.get(status, "Error")
    return _json(status, {"error": {"code": status, "message": message, "title": title}})


def _refusal(refusal: AuthError, prefix: str) -> _Response:
    if refusal.code is None:
        return _keystone_error(refusal.status, refusal.message)
    return _error(refusal.status, f"{prefix}{refusal.code}", refusal.message)


def _error(status: int, error_code: str, error_msg: str) -> _Response:
    headers = _headers()
    body = {"error_code": error_code, "error_msg": error_msg, "request_id": headers["X-Request-Id"]}
    return _Response(status, _json_bytes(body), headers)


def _fault(fault: Fault) -> _Response:
    if fault.drop:
        return _Response(None)
    response = _error(fault.status, fault.error_code, fault.error_msg)
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
