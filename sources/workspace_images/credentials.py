"""Credentials of an account: one dlt spec per way to authenticate, and the check that one whole way is set."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple, Type, Union, cast

import dlt
from dlt.common.configuration import configspec
from dlt.common.configuration.providers import SECRETS_TOML
from dlt.common.configuration.resolve import initialize_credentials
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.configuration.specs.base_configuration import is_secret_hint
from dlt.common.typing import TSecretStrValue, is_optional_type
from requests import Response
from requests.auth import AuthBase

from .auth import AkSkAuth, IamTokenAuth, IamTokenProvider, TokenAuth
from .config import ConfigError, env_name, init_hint, settings_files
from .settings import SOURCE_SECTION


@configspec
class WorkspaceCredentials(CredentialsConfiguration):
    """What the three ways to authenticate share: how they sign requests, which values are secret.

    Not a way itself (it has no fields): dlt resolves one of TokenCredentials,
    PasswordCredentials and AkSkCredentials, whichever has all its fields set.
    """

    mode: ClassVar[str] = ""
    """The way's name in messages (`token`, `password`, `aksk`)."""
    probe_first: ClassVar[bool] = False
    """Whether one project's request goes first: a gateway that refuses it would lock the key
    after a few more bad signatures, so the others then fail without a request."""
    listing_path: ClassVar[str] = "/v3/auth/projects"
    """IAM's project list for these credentials."""

    def given(self) -> Dict[str, str]:
        """The fields set to something other than blanks, by name."""
        return {name: str(value) for name, value in self.items() if value is not None and str(value).strip()}

    def secrets(self) -> List[str]:
        """The values that text coming back from the network has redacted (the AK included:
        a request's `Authorization` header carries it)."""
        hints = self.get_resolvable_fields()
        return [value for name, value in self.given().items() if is_secret_hint(hints[name])]

    def token_provider(self, iam_endpoint: str, post: Callable[..., Response]) -> Optional[IamTokenProvider]:
        """What issues this account's IAM tokens, when IAM issues them (password mode)."""
        return None

    def project_auth(self, project_id: str, region: str, provider: Optional[IamTokenProvider]) -> AuthBase:
        """How requests to one project's Workspace endpoint authenticate."""
        raise NotImplementedError

    def listing_auth(self, provider: Optional[IamTokenProvider]) -> AuthBase:
        """How the request for IAM's project list authenticates (password mode: may ask IAM for a token)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        hints = self.get_resolvable_fields()
        shown = ", ".join(f"{name}=***" if is_secret_hint(hints[name]) else f"{name}={value!r}"
                          for name, value in self.given().items())
        return f"{type(self).__name__}({shown})"

    __str__ = __repr__


@configspec
class TokenCredentials(WorkspaceCredentials):
    """A fixed IAM token, sent as it is in `X-Auth-Token`."""

    token: TSecretStrValue = None  # type: ignore[assignment]  # dlt: a field without a value is a required one
    mode: ClassVar[str] = "token"

    def project_auth(self, project_id: str, region: str, provider: Optional[IamTokenProvider]) -> AuthBase:
        return TokenAuth(self.token)

    def listing_auth(self, provider: Optional[IamTokenProvider]) -> AuthBase:
        return TokenAuth(self.token)


@configspec
class PasswordCredentials(WorkspaceCredentials):
    """An IAM user's name, password and account (domain): IAM issues a token per project."""

    user_name: str = None  # type: ignore[assignment]  # dlt: a field without a value is a required one
    password: TSecretStrValue = None  # type: ignore[assignment]  # required, as above
    domain_name: str = None  # type: ignore[assignment]  # required, as above
    mode: ClassVar[str] = "password"

    def token_provider(self, iam_endpoint: str, post: Callable[..., Response]) -> Optional[IamTokenProvider]:
        return IamTokenProvider(iam_endpoint, self.user_name, self.password, self.domain_name, post=post)

    def project_auth(self, project_id: str, region: str, provider: Optional[IamTokenProvider]) -> AuthBase:
        assert provider is not None, "Account.connect() first"
        return IamTokenAuth(provider, project_id, region)

    def listing_auth(self, provider: Optional[IamTokenProvider]) -> AuthBase:
        """A token scoped to the account (raises CredentialsRejected or IamError as IAM answers)."""
        assert provider is not None, "Account.connect() first"
        return TokenAuth(provider.token(None))


@configspec
class AkSkCredentials(WorkspaceCredentials):
    """An access key pair that signs each request (SDK-HMAC-SHA256); with `security_token`, temporary ones."""

    access_key: TSecretStrValue = None  # type: ignore[assignment]  # dlt: a field without a value is a required one
    secret_key: TSecretStrValue = None  # type: ignore[assignment]  # required, as above
    security_token: Optional[TSecretStrValue] = None
    mode: ClassVar[str] = "aksk"
    probe_first: ClassVar[bool] = True
    listing_path: ClassVar[str] = "/v3/projects"

    def project_auth(self, project_id: str, region: str, provider: Optional[IamTokenProvider]) -> AuthBase:
        return AkSkAuth(self.access_key, self.secret_key, project_id=project_id,
                        security_token=self.security_token or None)

    def listing_auth(self, provider: Optional[IamTokenProvider]) -> AuthBase:
        return AkSkAuth(self.access_key, self.secret_key, security_token=self.security_token or None)


AccountCredentials = Union[TokenCredentials, PasswordCredentials, AkSkCredentials]
"""The credentials of an account, as a source's argument: dlt resolves the first of these specs
whose fields are all set, in this order."""
MODES: Tuple[Type[WorkspaceCredentials], ...] = (TokenCredentials, PasswordCredentials, AkSkCredentials)


def _fields(spec: Type[WorkspaceCredentials]) -> List[str]:
    return list(spec.get_resolvable_fields())


def _required(spec: Type[WorkspaceCredentials]) -> List[str]:
    return [name for name, hint in spec.get_resolvable_fields().items() if not is_optional_type(hint)]


FIELDS = tuple(name for spec in MODES for name in _fields(spec))
"""Every credential's key under `[<section>.credentials]`."""


def credentials_from(given: Mapping[str, Any], where: str = SOURCE_SECTION) -> WorkspaceCredentials:
    """The credentials that `given` (key -> value, blanks as unset) holds, as dlt's union resolves
    them: the first of MODES whose fields are all set.

    A small check goes first, because the union does not say why nothing resolved (nothing set
    and a user name without its password look the same to it) and resolves a token set beside an
    AK/SK pair as the token. So this names what is missing or too much, in one line that
    names keys and never a value.

    Raises:
        ConfigError: none is set, a mix of modes is set, a mode misses a part, or a value spans lines.
    """
    values = {name: str(given[name]) for name in FIELDS
              if given.get(name) is not None and str(given[name]).strip()}
    env = env_name(where) + "__CREDENTIALS__"
    chosen = [spec for spec in MODES if any(name in values for name in _fields(spec))]
    if not chosen:
        ways = ", or ".join(env + " + ".join(name.upper() for name in _required(spec)) for spec in MODES)
        raise ConfigError(f"no credentials for {where}: set one mode under [{where}.credentials] in "
                          f"{settings_files(SECRETS_TOML)}, or {ways}{init_hint()}")
    if len(chosen) > 1:
        ways = ", ".join("/".join(_required(spec)) for spec in MODES)
        raise ConfigError(f"conflicting credentials for {where}: {', '.join(values)} are set; set only one of {ways}")
    missing = [name for name in _required(chosen[0]) if name not in values]
    if missing:
        raise ConfigError(f"incomplete credentials for {where}: {chosen[0].mode} mode also needs "
                          + ", ".join(f"{env}{name.upper()}" for name in missing))
    for name, value in values.items():
        if any(ch in value for ch in "\r\n"):
            raise ConfigError(f"credentials.{name} of {where} spans several lines")
    return cast(WorkspaceCredentials, initialize_credentials(AccountCredentials, values))


def section_credentials(where: str, given: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The credentials at exactly `[<where>.credentials]`: each key `given` lacks read with
    `dlt.secrets` (environment, secrets.toml; never config.toml), where dlt's resolution of a
    spec would also look in the sections above (another account's credentials)."""
    values = dict(given or {})
    for name in FIELDS:
        if values.get(name) is None:
            values[name] = dlt.secrets.get(f"{where}.credentials.{name}")
    return values


def checked_credentials(resolved: Optional[WorkspaceCredentials], where: str = SOURCE_SECTION) -> WorkspaceCredentials:
    """The credentials dlt resolved for a source's `AccountCredentials` argument, checked.

    dlt hands over None when no spec resolved whole, and the first that did when several could;
    `credentials_from` over the keys of `[<where>.credentials]` (those dlt resolved winning) then
    says what is missing or too much. Credentials passed in code, which dlt did not read from its
    providers (it lists none in `__resolved_fields_set__`), are checked alone.

    Raises:
        ConfigError: as `credentials_from`.
    """
    if resolved is not None and not resolved.__resolved_fields_set__:
        credentials_from(resolved.given(), where)
        return resolved
    found = credentials_from({**section_credentials(where), **(resolved.given() if resolved else {})}, where)
    return resolved if resolved is not None else found
