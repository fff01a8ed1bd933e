"""One page of the images API: its status checked, its JSON read once and checked."""

from __future__ import annotations

import json
from typing import Any, List

from requests import Response

from .failures import ApiError, MalformedResponse, RedirectRefused


class ImagesPage(List[Any]):
    """The images of one page, with the `total_count` the page gave."""

    def __init__(self, images: List[Any], total_count: int) -> None:
        super().__init__(images)
        self.total_count = total_count


def check_status(response: Response, *args: Any, **kwargs: Any) -> None:
    """Response hook: raise ApiError on an error status, RedirectRefused on a redirect."""
    if response.status_code >= 400:
        raise ApiError(response)
    if response.status_code >= 300:
        raise RedirectRefused(response)


def read_page(content: bytes) -> ImagesPage:
    """The images and `total_count` of a successful answer's body; MalformedResponse when it is
    not `{"total_count": N, "images": [{"id": ...}, ...]}` (N an integer, not a boolean)."""
    try:
        body = json.loads(content)
    except ValueError as exc:
        raise MalformedResponse(f"body is not JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(body, dict) or not isinstance(body.get("images"), list):
        raise MalformedResponse("expected an object with an `images` list")
    total = body.get("total_count")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise MalformedResponse(f"`total_count` is not a non-negative integer: {total!r}")
    if not all(isinstance(image, dict) and image.get("id") for image in body["images"]):
        raise MalformedResponse("an image without an `id`")
    return ImagesPage(body["images"], total)
