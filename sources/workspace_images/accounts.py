"""Accounts: their credentials, how their requests authenticate, and project discovery through IAM."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Set
from urllib.parse import urlsplit

import dlt
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException
from dlt.common.configuration.providers import CONFIG_TOML
from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator
from requests import Request, RequestException, Response, Session

from .auth import CredentialsRejected, IamError, IamTokenProvider, iam_url
from .config import (
    ConfigError,
    Project,
    check_rate_limit,
    env_name,
    init_hint,
    parse_projects,
    parse_regions,
    settings_files,
)
from .credentials import WorkspaceCredentials, checked_credentials, credentials_from, section_credentials
from .failures import error_text, redirect_target
from .fetch import Target
from .outcomes import ProjectOutcome
from .safe_text import add_secrets, safe_text
from .sessions import make_session
from .settings import (
    ACCOUNT_NAME_PATTERN,
    DEFAULT_ACCOUNT,
    ERR_INVALID_PROJECT,
    MAX_DISCOVERY_PAGES,
    PROJECT_ID_PATTERN,
    REGION_PATTERN,
    SKIPPED_PROJECTS,
    SOURCE_SECTION,
)

logger = logging.getLogger("workspace_images")


class DiscoveryFailed(Exception):
    """IAM could not list an account's projects for a reason other than its credentials."""


class ProjectListPaginator(JSONLinkPaginator):
    """dlt's JSONLinkPaginator on IAM's `links.next`; a next link that is not text (a number, a
    table: a hostile or broken answer) or is empty ends the list, as null does."""

    def __init__(self) -> None:
        super().__init__(next_url_path="links.next")

    def update_state(self, response: Response, data: Optional[List[Any]] = None) -> None:
        super().update_state(response, data)
        if not isinstance(self._next_reference, str) or not self._next_reference.strip():
            self._next_reference = None


@dataclass
class Account:
    """One account (IAM domain) to load: its credentials and which of its projects.

    Call `connect()` before `targets()`: it checks the credentials with IAM where
    that is possible (password mode: one token request) and discovers projects.
    """

    name: str
    credentials: WorkspaceCredentials
    projects: List[Project] = field(default_factory=list)
    discover: bool = False
    regions: List[str] = field(default_factory=list)
    provider: Optional[IamTokenProvider] = None
    rate_limit: Optional[float] = None
    """Requests a second the account's Workspace requests keep to (None: its gateway's 429s set the pace)."""
    rejected: List[ProjectOutcome] = field(default_factory=list)
    """Discovered projects whose id is unfit to use (not letters, digits, `-`, `_`): never
    requested, recorded as failed with `WI.INVALID_PROJECT`."""

    def __post_init__(self) -> None:
        # whatever comes back from the network has these redacted before it is kept or shown
        add_secrets(*self.credentials.secrets())

    @property
    def mode(self) -> str:
        """How the account authenticates: `token`, `password` or `aksk` (the spec dlt resolved)."""
        return self.credentials.mode

    def connect(self, iam_endpoint: str, http: Session) -> None:
        """Check the credentials with IAM (password mode) and discover projects when asked.

        Raises:
            ConfigError: IAM refused the credentials (tried once).
            DiscoveryFailed: IAM did not list the projects.
        """
        self.provider = self.credentials.token_provider(iam_endpoint, http.post)
        if self.discover:
            self.projects = self._merge(self.projects, self._discover(iam_endpoint, http))
        if self.provider is not None and self.projects:
            first = self.projects[0]
            try:
                self.provider.token(first.project_id, first.region)
            except CredentialsRejected as exc:
                raise ConfigError(str(exc)) from None
            except IamError as exc:
                raise DiscoveryFailed(f"account {self.name}: {exc}") from None

    def targets(self) -> List[Target]:
        """The account's projects to fetch, each with how its requests authenticate."""
        group = self.name if self.credentials.probe_first else None
        return [Target(project, self.credentials.project_auth(project.project_id, project.region, self.provider),
                       group)
                for project in self.projects]

    @staticmethod
    def _merge(configured: List[Project], discovered: List[Project]) -> List[Project]:
        known = {p.project_id for p in configured}
        return configured + [p for p in discovered if p.project_id not in known]

    def _discover(self, iam_endpoint: str, http: Session) -> List[Project]:
        """IAM's list of the account's projects, page by page as its `links.next` says
        (ProjectListPaginator), on `http` and its bounds; at most MAX_DISCOVERY_PAGES pages.

        A next link to another address is not followed (the request would carry the
        credentials), nor one back to a page already read (the list would never end).
        """
        url = iam_url(iam_endpoint, None) + self.credentials.listing_path
        try:
            auth = self.credentials.listing_auth(self.provider)
        except CredentialsRejected as exc:
            raise ConfigError(str(exc)) from None
        except IamError as exc:
            raise DiscoveryFailed(f"account {self.name}: {exc}") from None
        request = Request("GET", url, auth=auth)
        paginator = ProjectListPaginator()
        read: Set[str] = set()
        next_url = url
        listed: List[Mapping[str, Any]] = []
        for _ in range(MAX_DISCOVERY_PAGES):
            read.add(next_url)
            response = self._get(http, request)
            page = self._json(response).get("projects")
            if not isinstance(page, list):
                raise DiscoveryFailed(f"account {self.name}: IAM answered without a `projects` list")
            listed.extend(p for p in page if isinstance(p, dict))
            paginator.update_state(response)
            if not paginator.has_next_page:
                break
            paginator.update_request(request)
            next_url = str(request.url)
            if _origin(next_url) != _origin(url):
                raise DiscoveryFailed(
                    f"account {self.name}: IAM's project list links its next page to another address "
                    f"({_origin(next_url)}); not followed, the request would carry the credentials"
                )
            if next_url in read:
                raise DiscoveryFailed(
                    f"account {self.name}: IAM's project list links its next page back to a page already read "
                    f"({safe_text(next_url)}); not followed, the list would never end"
                )
        else:  # the last page read links to one more
            logger.warning("account %s: IAM's project list has more than %d pages: the pages after them are "
                           "not read", self.name, MAX_DISCOVERY_PAGES)
        return self._keep(listed)

    def _get(self, http: Session, request: Request) -> Response:
        """One page of the list, asked on `http` (its time and size bounds, no redirects);
        an answer other than 200 raises."""
        url = str(request.url)
        try:
            response: Response = http.get(url, params=request.params, auth=request.auth)
        except RequestException as exc:
            raise DiscoveryFailed(f"account {self.name}: IAM at {url} did not answer ({exc.__class__.__name__})") from None
        if response.status_code in (401, 403):
            raise ConfigError(
                f"account {self.name}: IAM refused to list projects (HTTP {response.status_code}: "
                f"{error_text(response)}): check the credentials and that they may list projects"
            )
        if 300 <= response.status_code < 400:
            raise DiscoveryFailed(
                f"account {self.name}: IAM answered HTTP {response.status_code} with a redirect to "
                f"{redirect_target(response)}: not followed, credentials are never sent to another address; "
                "check iam_endpoint"
            )
        if response.status_code != 200:
            raise DiscoveryFailed(
                f"account {self.name}: listing projects failed: HTTP {response.status_code}: {error_text(response)}"
            )
        return response

    def _json(self, response: Response) -> Dict[str, Any]:
        """The page's JSON object ({} for JSON that is not one)."""
        try:
            body = response.json()
        except ValueError:
            raise DiscoveryFailed(f"account {self.name}: IAM's project list is not JSON") from None
        return body if isinstance(body, dict) else {}

    def _keep(self, listed: List[Mapping[str, Any]]) -> List[Project]:
        kept: List[Project] = []
        for item in listed:
            name, project_id = str(item.get("name") or ""), str(item.get("id") or "")
            region = name.split("_", 1)[0]
            if name in SKIPPED_PROJECTS:
                reason = "not a region"
            elif item.get("enabled") is False:
                reason = "disabled"
            elif not re.fullmatch(REGION_PATTERN, region) or not project_id:
                reason = "name is not a region"
            elif self.regions and region not in self.regions:
                reason = "region not selected"
            elif not isinstance(item.get("id"), str) or not re.fullmatch(PROJECT_ID_PATTERN, project_id):
                self._reject(Project(region, project_id[:100], account=self.name, name=name[:100], discovered=True))
                continue
            else:
                kept.append(Project(region, project_id, account=self.name, name=name, discovered=True))
                continue
            logger.info("account %s: skipping project %r (%r): %s", self.name, name, project_id, reason)
        logger.info(
            "account %s: discovered %d project(s): %s",
            self.name, len(kept), ", ".join(f"{safe_text(p.name)} ({p.project_id})" for p in kept) or "none",
        )
        return kept

    def _reject(self, project: Project) -> None:
        message = (
            f"IAM listed project {project.name!r} with id {project.project_id!r}, which is not letters, "
            "digits, '-' or '_': not requested"
        )
        logger.warning("account %s: %s", self.name, message)
        now = datetime.now(timezone.utc)
        self.rejected.append(ProjectOutcome(
            project=project, error_code=ERR_INVALID_PROJECT, error_msg=message, started_at=now, finished_at=now,
        ))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


ACCOUNT_SETTINGS = ("projects", "discover_projects", "regions", "credentials", "rate_limit")
"""What an entry of `accounts` may hold."""


def section_of(account: str) -> str:
    """Where an account's settings live: `sources.workspace_images` for the default account,
    `sources.workspace_images.accounts.<name>` for the others."""
    return SOURCE_SECTION if account == DEFAULT_ACCOUNT else f"{SOURCE_SECTION}.accounts.{account}"


def _account_settings(name: str, given: Any) -> Dict[str, Any]:
    """An account's settings: its entry of `accounts`, each key it lacks read from dlt's providers
    at exactly `sources.workspace_images.accounts.<name>.<key>`; `credentials` as a mapping of
    the keys of every mode, for `credentials_from`.

    The one place the source reads settings itself, for what dlt's injection cannot do with
    accounts the user names: dlt hands over the whole `accounts` table from the first provider
    that has one (secrets.toml's, when an account's credentials are there and its projects in
    config.toml), and a spec resolved under `accounts.<name>` falls back to the keys of the
    sections above it, which would give an account the default account's projects and
    credentials. Secrets are read with `dlt.secrets`, so never from config.toml.
    """
    section = section_of(name)
    settings: Dict[str, Any] = dict(given) if isinstance(given, Mapping) else {}
    for key in ("projects", "discover_projects", "regions", "rate_limit"):
        if key not in settings:
            try:
                value = dlt.config.get(f"{section}.{key}", bool) if key == "discover_projects" else \
                    dlt.config.get(f"{section}.{key}")
            except ConfigValueCannotBeCoercedException:
                raise ConfigError(f"account {name}: {key} must be true or false") from None
            if value is not None:
                settings[key] = value
    given_credentials = settings.get("credentials")
    settings["credentials"] = section_credentials(
        section, given_credentials if isinstance(given_credentials, Mapping) else None)
    return settings


def accounts_table(value: Any) -> Dict[str, Any]:
    """The `accounts` setting as a table of account names: a mapping, JSON text of one (as an
    environment variable holds it), or nothing (no more accounts).

    Raises:
        ConfigError: it is neither.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"accounts is not a JSON object: {exc.msg}") from None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"accounts must be a table of account names, e.g. [{SOURCE_SECTION}.accounts.prod]")
    return dict(value)


def resolve_accounts(
    projects: Any,
    credentials: Optional[WorkspaceCredentials],
    discover_projects: bool,
    regions: Any,
    accounts: Optional[Mapping[str, Any]],
    rate_limit: Optional[float] = None,
) -> List[Account]:
    """The accounts of a run, checked without any request.

    The top-level `projects` / `discover_projects` / `credentials` (as dlt resolved the
    source's argument, see `checked_credentials`) form the account `default`; each entry of `accounts` is one more, with its own `projects`,
    `discover_projects`, `regions`, `credentials` and `rate_limit`, completed from dlt's providers
    (`_account_settings`). An account without a `rate_limit` of its own keeps to the top-level
    one (`rate_limit`, already checked), each account at that rate.

    Raises:
        ConfigError: a setting is missing, malformed or conflicting.
    """
    region_filter = parse_regions(regions)
    result: List[Account] = []
    top_projects = parse_projects(projects, region_filter)
    if top_projects or discover_projects or not accounts:
        result.append(Account(DEFAULT_ACCOUNT, checked_credentials(credentials), top_projects,
                              bool(discover_projects), region_filter, rate_limit=rate_limit))
    for name, settings in accounts_table(accounts).items():
        if not re.fullmatch(ACCOUNT_NAME_PATTERN, str(name)) or name == DEFAULT_ACCOUNT:
            raise ConfigError(f"invalid account name {name!r}: use letters, digits and '_' (not 'default')")
        settings = _account_settings(name, settings)
        unknown = sorted(set(settings) - set(ACCOUNT_SETTINGS))
        if unknown:
            raise ConfigError(f"account {name}: unknown setting(s) {', '.join(unknown)}")
        own_regions = parse_regions(settings.get("regions")) or region_filter
        own_rate = check_rate_limit(settings.get("rate_limit"), f"account {name}: rate_limit")
        result.append(Account(
            name, credentials_from(settings["credentials"], section_of(name)),
            parse_projects(settings.get("projects"), own_regions, account=name),
            bool(settings.get("discover_projects", False)),
            own_regions,
            rate_limit=own_rate if own_rate is not None else rate_limit,
        ))
    for account in result:
        if not account.projects and not account.discover:
            section = section_of(account.name)
            raise ConfigError(
                f"no projects to load in account {account.name}: pass --project REGION:PROJECT_ID or --discover, "
                f"or set projects (or discover_projects = true) under [{section}] in {settings_files(CONFIG_TOML)}, "
                f"or {env_name(section + '.projects')}{init_hint()}"
            )
    return result


def connect_accounts(accounts: List[Account], iam_endpoint: str) -> None:
    """Connect every account (credential checks, discovery), raising on the first that fails;
    then leave each project to one account (`read_once`)."""
    http = make_session()[0]
    for account in accounts:
        account.connect(iam_endpoint, http)
    read_once(accounts)


def read_once(accounts: List[Account]) -> None:
    """Leave each project (by id) to the first account that reaches it, in the order of `accounts`.

    A project configured or discovered in two accounts would be read twice and logged twice
    under one `project_runs` key (run id, project id). The first account keeps it: `default`,
    then the entries of `accounts` in the order they are configured. The later ones drop it,
    unread and unrecorded, with one warning naming the project and both accounts.
    """
    owner: Dict[str, str] = {}
    for account in accounts:
        kept: List[Project] = []
        for project in account.projects:
            first = owner.setdefault(project.project_id, account.name)
            if first == account.name:
                kept.append(project)
            else:
                logger.warning("project %s is reached by accounts %s and %s: read once, by account %s",
                               project, first, account.name, first)
        account.projects = kept
        rejected: List[ProjectOutcome] = []
        for outcome in account.rejected:
            if owner.setdefault(outcome.project.project_id, account.name) == account.name:
                rejected.append(outcome)
        account.rejected = rejected
