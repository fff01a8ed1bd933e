"""How the simulator answers a request: redirects, IAM's calls and ``GET /v2/{project_id}/images``.

An answer is a function of the workspace (:mod:`simulator.workspace`), the
identity side (:mod:`simulator.iam`), the armed redirects, the flow control
(:mod:`simulator.throttle`) and the request: a redirect armed for the path
answers first; else IAM's three calls or the images API answer, each with its
bodies and error shapes. An images request is authenticated first, then
throttled, then served.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

from .data import Image, sort_images
from .faults import STATUS_ERRORS, Fault, Redirects
from .httpd import Request, Response
from .iam import IdentityStore
from .identity import AuthError
from .projects import ProjectState, serialise
from .signing import Headers
from .throttle import THROTTLE_CODE, RateLimits, Throttled
from .workspace import Workspace

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


@dataclass(frozen=True)
class Answer:
    """The answer to one request, with what the simulator records of it.

    Attributes:
        response: What to send (status None: no answer).
        project_id: The project of an images request; None for other paths.
        query: The query parameters (first value of each).
    """

    response: Response
    project_id: str | None
    query: dict[str, str]


class _BadRequest(Exception):
    pass


def answer(
    request: Request,
    workspace: Workspace,
    iam: IdentityStore,
    redirects: Redirects,
    pause: Callable[[float], bool],
    limits: RateLimits,
) -> Answer:
    """Answer one request.

    Args:
        request: The request as received.
        workspace: The projects and their faults; its lock is held while a
            project is read, authorised and hooked.
        iam: The identity side, sharing the workspace's lock.
        redirects: The redirects armed; one that matches answers first.
        pause: Waits a number of seconds (a ``slow`` fault); returns False when
            the simulator stopped meanwhile, and then nothing is answered.
        limits: The flow control of Workspace requests. As at Huawei's
            gateway, a request is authenticated first (a refused one is
            answered 401/403 and takes no token), then throttled against the
            bucket of the account it authenticated as (429 ``APIGW.0308``:
            it takes no token and never reaches the project: no fault, hook
            or request count of the project). IAM's calls are not limited.

    Returns:
        The answer.
    """
    method, target, headers, body = request.method, request.target, request.headers, request.body
    parts = urlsplit(target)
    query = {name: values[0] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    match = IMAGES_PATH.match(parts.path)
    project_id = unquote(match["project_id"]) if match is not None else None
    redirect = redirects.take(parts.path)
    if redirect is not None:
        response = Response(redirect.status, b"{}", _headers())
        response.headers["Location"] = redirect.location
        return Answer(response, project_id, query)
    if parts.path in IAM_METHODS:
        response = _answer_iam(request, parts.path, parts.query, query, workspace, iam)
        response.headers["X-IAM-Trace-Id"] = response.headers["X-Request-Id"]
        return Answer(response, None, query)
    if project_id is None:
        return Answer(_error(404, *STATUS_ERRORS[404]), None, query)
    if method != "GET":
        response = _error(405, "WKS.0405", f"The method {method} is not allowed for {parts.path}.")
        response.headers["Allow"] = "GET"
        return Answer(response, project_id, query)
    if not pause(_slow_delay(workspace, project_id)):
        return Answer(Response(None), project_id, query)
    with workspace.lock:
        try:
            caller = iam.authorize_workspace(method, parts.path, parts.query, headers, body, project_id)
        except AuthError as refusal:
            LOGGER.debug("refused an images request for %s: %s", project_id, refusal.message)
            return Answer(_refusal(refusal, WORKSPACE_GATEWAY), project_id, query)
        throttled = limits.admit(caller.account.domain, iam.clock())
        if throttled is not None:
            LOGGER.debug("throttled an images request of %s for %s", caller.account.domain, project_id)
            return Answer(_throttled(throttled), project_id, query)
        state = workspace.project_state(project_id)
        if state is None:
            return Answer(_error(404, *STATUS_ERRORS[404]), project_id, query)
        state.requests += 1
        response = _answer_images(workspace, state, query, _echo_text(method, target, headers, body))
        if response.status is not None and response.delivery is None:
            drip = state.take_drip()
            if drip is not None:
                response.delivery = drip.kind
                response.interval = drip.interval
        if state.hook is not None:
            try:
                state.hook(project_id, state.requests)
            except Exception:
                LOGGER.exception("on_request hook of project %s failed", project_id)
    return Answer(response, project_id, query)


def _slow_delay(workspace: Workspace, project_id: str) -> float:
    with workspace.lock:
        state = workspace.project_state(project_id)
        slow = state.take("slow") if state is not None else None
        return slow.interval if slow is not None else 0.0


# IAM


def _answer_iam(
    request: Request, path: str, raw_query: str, query: dict[str, str], workspace: Workspace, iam: IdentityStore
) -> Response:
    method, headers, body, base_url = request.method, request.headers, request.body, request.base_url
    allowed = IAM_METHODS[path]
    if method != allowed:
        response = _keystone_error(405, f"The method {method} is not allowed for {path}.")
        response.headers["Allow"] = allowed
        return response
    try:
        if path == TOKENS_PATH:
            echoing = _echo_iam(workspace, body)
            if echoing:
                return _keystone_error(400, _echo_text(method, path + (f"?{raw_query}" if raw_query else ""),
                                                       headers, body))
            catalog = query.get("nocatalog", "").lower() not in ("true", "1")
            token, issued = iam.issue_token(body, catalog=catalog)
            response = _json(201, issued)
            response.headers["X-Subject-Token"] = token
            return response
        caller = iam.authorize_iam(method, path, raw_query, headers, body, allow_signature=path == PROJECTS_PATH)
        filters = query if path == PROJECTS_PATH else {}
        per_page, first_next = iam.listing_paging
        if per_page is None:
            projects = iam.listing(caller.account.domain, base_url, filters)
        else:
            paging = {k: v for k, v in query.items() if k in ("page", "per_page")}
            projects, page, size, more = iam.listing_page(caller.account.domain, base_url, {**filters, **paging})
    except AuthError as refusal:
        LOGGER.debug("IAM refused %s %s: %s", method, path, refusal.message)
        return _refusal(refusal, IAM_GATEWAY)
    if per_page is None:
        self_link = f"{base_url}{path}" + (f"?{raw_query}" if raw_query and path == PROJECTS_PATH else "")
        return _json(200, {"projects": projects, "links": {"self": self_link, "previous": None, "next": None}})
    kept = [(k, v) for k, v in parse_qsl(raw_query, keep_blank_values=True)
            if k not in ("page", "per_page")] if path == PROJECTS_PATH else []

    def link(number: int) -> str:
        return f"{base_url}{path}?" + urlencode([("page", number), ("per_page", size), *kept])

    next_link = link(page + 1) if more else None
    if page == 1 and first_next is not None:
        next_link = first_next
    links = {"self": link(page), "previous": link(page - 1) if page > 1 else None, "next": next_link}
    return _json(200, {"projects": projects, "links": links})


def _echo_iam(workspace: Workspace, body: bytes) -> bool:
    """Whether a token request is scoped to a project armed with the ``echo_iam`` fault (consumed)."""
    try:
        scope = json.loads(body)["auth"]["scope"]["project"]
        project_id = scope["id"]
    except (ValueError, KeyError, TypeError):
        return False
    with workspace.lock:
        state = workspace.project_state(project_id) if isinstance(project_id, str) else None
        return state is not None and state.take("echo_iam") is not None


def _echo_text(method: str, target: str, headers: Headers, body: bytes) -> str:
    """A request as received, for the ``echo`` faults: request line, headers, blank line, body."""
    lines = [f"{method} {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items()), ""]
    return "\r\n".join(lines) + "\r\n" + body.decode("utf-8", errors="replace")


# Workspace images


def _answer_images(workspace: Workspace, state: ProjectState, query: dict[str, str], request: str) -> Response:
    failing = state.take_failing()
    if failing is not None:
        if failing.fault is None:
            return Response(None, delivery="silent")
        if failing.fault.echo:
            return _error(failing.fault.status, failing.fault.error_code, request)
        return _fault(failing.fault)
    drawn = workspace.random_fault()
    if drawn is not None:
        return _fault(drawn)
    try:
        limit = _int_param(query, "limit", MAX_LIMIT, MAX_LIMIT)
        offset = _int_param(query, "offset", 0, MAX_OFFSET)
        sort_field = _enum_param(query, "sort_field", SORT_FIELDS)
        sort_type = _enum_param(query, "sort_type", SORT_TYPES)
    except _BadRequest as exc:
        return _error(400, "WKS.0001", str(exc))
    bomb = state.take("gzip_bomb")
    if bomb is not None:
        response = Response(200, headers=_headers(), delivery="gzip_bomb", inflated=bomb.size)
        response.headers["Content-Encoding"] = "gzip"
        return response
    if state.take("stuck") is not None:
        offset = 0
    oversized = state.take("oversized_page")
    if oversized is not None:
        limit = oversized.size
    matching = [image for image in state.live if _matches(image, query, workspace.extra_fields)]
    ordered = sort_images(matching, sort_field, descending=sort_type == "desc")
    page = [serialise(image, workspace.extra_fields) for image in ordered[offset:offset + limit]]
    if oversized is not None:
        page = _padded(page, limit)
    lying = state.take("total_count")
    total = lying.total if lying is not None else len(matching)
    body = _json_bytes({"total_count": total, "images": page}, compact=True,
                       truncate=state.take("malformed") is not None)
    return Response(200, body, _headers())


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


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status, _json_bytes(body), _headers())


def _keystone_error(status: int, message: str) -> Response:
    title = KEYSTONE_TITLES.get(status, "Error")
    return _json(status, {"error": {"code": status, "message": message, "title": title}})


def _refusal(refusal: AuthError, prefix: str) -> Response:
    if refusal.code is None:
        return _keystone_error(refusal.status, refusal.message)
    return _error(refusal.status, f"{prefix}{refusal.code}", refusal.message)


def _error(status: int, error_code: str, error_msg: str) -> Response:
    headers = _headers()
    body = {"error_code": error_code, "error_msg": error_msg, "request_id": headers["X-Request-Id"]}
    return Response(status, _json_bytes(body), headers)


def _fault(fault: Fault) -> Response:
    if fault.drop:
        return Response(None)
    response = _error(fault.status, fault.error_code, fault.error_msg)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response


def _throttled(throttled: Throttled) -> Response:
    response = _error(429, THROTTLE_CODE, throttled.message)
    if throttled.retry_after is not None:
        response.headers["Retry-After"] = str(throttled.retry_after)
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
