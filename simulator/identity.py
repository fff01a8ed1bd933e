"""The identity side's vocabulary: accounts, IAM projects, callers, refusals and the default credentials.

The store that holds them is :class:`~simulator.iam.IdentityStore`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_DOMAIN = "sim-domain"
DEFAULT_USER = "sim-user"
DEFAULT_PASSWORD = "sim-password"
DEFAULT_ACCESS_KEY = "SIMACCESSKEY0000000001"
DEFAULT_SECRET_KEY = "SimSecretKey0000000000000000000000000001"
MOS_PROJECT = "MOS"
"""The billing project every account has; it holds no Workspace data."""


class AuthError(Exception):
    """A refused request.

    The server renders it as a gateway body ``{"error_code": "APIG.0301", ...}``
    (the prefix depends on the endpoint) when it has a ``code``, else as
    Keystone's ``{"error": {"code", "message", "title"}}``.

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

    @classmethod
    def keystone(cls, status: int, message: str) -> AuthError:
        """A refusal in Keystone's shape."""
        return cls(status, message)

    @classmethod
    def gateway(cls, status: int, code: str, message: str) -> AuthError:
        """A refusal in the gateway's shape, ``code`` without its prefix."""
        return cls(status, message, code)

    @classmethod
    def invalid(cls, field: str, problem: str) -> AuthError:
        """Keystone's 400 for a malformed field of a request."""
        return cls(400, f"Invalid input for field '{field}': {problem}")


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
