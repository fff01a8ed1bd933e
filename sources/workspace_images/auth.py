"""Authentication of Workspace requests."""

from __future__ import annotations

from requests import PreparedRequest
from requests.auth import AuthBase


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
