"""Settings of a run: projects, endpoints, filters, checked before anything runs; where dlt reads them."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

import dlt
from dlt.common.configuration.providers import SettingsTomlProvider

from .settings import (
    DEFAULT_ACCOUNT,
    FILTER_PARAMS,
    MAX_ANSWER_BYTES_RANGE,
    MAX_NEW_FIELDS_RANGE,
    PROJECT_ID_PATTERN,
    REGION_PATTERN,
)


class ConfigError(ValueError):
    """A setting is missing or wrong. The message says which one and what to do; it never holds a secret."""


def env_name(key: str) -> str:
    """The environment variable of a setting: `sources.workspace_images.projects` -> `SOURCES__WORKSPACE_IMAGES__PROJECTS`."""
    return key.upper().replace(".", "__")


def settings_files(file_name: str) -> str:
    """Where dlt reads `file_name` (config.toml or secrets.toml), as its toml providers name the
    places, for messages: `/srv/x/.dlt/secrets.toml (or /home/me/.dlt/secrets.toml)`."""
    places = [
        os.path.abspath(location)
        for provider in dlt.config.config_providers if isinstance(provider, SettingsTomlProvider)
        for location in provider.locations or () if os.path.basename(location) == file_name
    ] or [os.path.join(".dlt", file_name)]
    places = list(dict.fromkeys(places))  # run from the home folder, ./.dlt is ~/.dlt
    return places[0] + "".join(f" (or {place})" for place in places[1:])


def init_hint() -> str:
    """The end of a missing-settings message: `workspace-images init` to write the templates, when
    the settings folder dlt reads first holds neither file (init writes none where one is), else ``."""
    first = [provider.locations[0] for provider in dlt.config.config_providers
             if isinstance(provider, SettingsTomlProvider) and provider.locations]
    if any(os.path.exists(path) for path in first):
        return ""
    return "; run `workspace-images init` to write their templates"


@dataclass(frozen=True)
class Project:
    """One project to load: its region and id, the account it belongs to, where it came from."""

    region: str
    project_id: str
    account: str = DEFAULT_ACCOUNT
    name: Optional[str] = None
    discovered: bool = False

    def __str__(self) -> str:
        return f"{self.region}:{self.project_id}"


def _as_list(value: Union[None, str, Sequence[Any]]) -> List[Any]:
    """Accept a list, a JSON list or a comma-separated string (as env vars give them)."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"not a valid JSON list: {text!r} ({exc.msg})") from None
            if not isinstance(parsed, list):
                raise ConfigError(f"expected a list, got {text!r}")
            return parsed
        return [part.strip() for part in text.split(",") if part.strip()]
    return list(value)


def check_region(region: Any) -> str:
    """Return `region` if it looks like a Huawei Cloud region id, else raise ConfigError."""
    if not isinstance(region, str) or not re.fullmatch(REGION_PATTERN, region):
        raise ConfigError(f"invalid region {region!r}: expected an id like cn-north-4 or ap-southeast-1")
    return region


def parse_project(value: Any, account: str = DEFAULT_ACCOUNT) -> Project:
    """Parse `REGION:PROJECT_ID` or a `{region, project_id}` mapping into a Project."""
    if isinstance(value, Mapping):
        region, project_id = value.get("region"), value.get("project_id") or value.get("id")
    elif isinstance(value, str) and ":" in value:
        region, _, project_id = value.strip().partition(":")
    else:
        raise ConfigError(
            f"invalid project {value!r}: write it as REGION:PROJECT_ID, e.g. cn-north-4:0605767e1f00d5c32f55c0137fb2b1d7"
        )
    region = check_region(region)
    if not isinstance(project_id, str) or not re.fullmatch(PROJECT_ID_PATTERN, project_id):
        raise ConfigError(f"invalid project id {project_id!r} in {value!r}: expected letters, digits, '-' or '_'")
    return Project(region=region, project_id=project_id, account=account)


def parse_projects(
    values: Union[None, str, Sequence[Any]], regions: Iterable[str] = (), account: str = DEFAULT_ACCOUNT
) -> List[Project]:
    """Parse the configured projects, drop duplicates, keep those in `regions` (all when empty).

    Raises:
        ConfigError: a project is malformed, or one project id is given for two regions.
    """
    wanted = {check_region(r) for r in regions}
    seen: Dict[str, Project] = {}
    for value in _as_list(values):
        project = parse_project(value, account)
        previous = seen.get(project.project_id)
        if previous and previous.region != project.region:
            raise ConfigError(
                f"project {project.project_id} is given for two regions ({previous.region}, {project.region})"
            )
        seen[project.project_id] = project
    return [p for p in seen.values() if not wanted or p.region in wanted]


def parse_regions(values: Union[None, str, Sequence[Any]]) -> List[str]:
    """Parse the region filter."""
    return [check_region(str(v)) for v in _as_list(values)]


def parse_filters(filters: Union[None, str, Mapping[str, Any]]) -> Dict[str, str]:
    """Check the API query parameters a user set; `limit` and `offset` belong to paging."""
    if filters is None or filters == "":
        return {}
    if isinstance(filters, str):
        try:
            filters = json.loads(filters)
        except json.JSONDecodeError:
            raise ConfigError(f"filters must be a table or JSON object, got {filters!r}") from None
    if not isinstance(filters, Mapping):
        raise ConfigError(f"filters must be a table or JSON object, got {filters!r}")
    unknown = sorted(set(filters) - set(FILTER_PARAMS))
    if unknown:
        raise ConfigError(f"unknown filter(s) {', '.join(unknown)}: allowed are {', '.join(FILTER_PARAMS)}")
    return {k: str(v) for k, v in filters.items() if v is not None and v != ""}


def check_endpoint(template: str, name: str = "endpoint") -> str:
    """Check an endpoint URL template (`{region}` optional) and return it without a trailing slash."""
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"{name} is empty")
    template = template.strip().rstrip("/")
    try:
        sample = template.format(region="cn-north-4")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f"{name} {template!r}: the only placeholder allowed is {{region}}") from None
    parts = urlsplit(sample)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} {template!r} is not an http(s) URL")
    return template


def check_concurrency(value: Any) -> int:
    """Projects fetched at once: a whole number from 1 to 64."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"concurrency must be a whole number, got {value!r}") from None
    if not 1 <= number <= 64:
        raise ConfigError(f"concurrency must be between 1 and 64, got {number}")
    return number


def check_project_timeout(value: Any) -> float:
    """Seconds one project may take: a number above 0."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"project_timeout must be a number of seconds, got {value!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"project_timeout must be more than 0 seconds, got {value!r}")
    return seconds


def check_max_new_fields(value: Any) -> int:
    """Columns `images` may get for new API fields: a whole number in MAX_NEW_FIELDS_RANGE."""
    low, high = MAX_NEW_FIELDS_RANGE
    number = value if isinstance(value, int) and not isinstance(value, bool) else None
    if number is None or not low <= number <= high:
        raise ConfigError(f"max_new_fields must be a whole number of columns from {low} to {high}, got {value!r}")
    return number


def check_rate_limit(value: Any, name: str = "rate_limit") -> Optional[float]:
    """Requests a second an account may send: a number above 0, as written in TOML or an environment
    variable; None (no limit) when not set. `name` is the setting as the message names it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        rate = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        rate = math.nan
    if not (rate > 0 and math.isfinite(rate)):
        raise ConfigError(f"{name} must be a number of requests a second above 0, got {value!r}")
    return rate


def check_max_answer_bytes(value: Any) -> int:
    """Bytes one answer may hold once decoded: a whole number in MAX_ANSWER_BYTES_RANGE."""
    low, high = MAX_ANSWER_BYTES_RANGE
    try:
        number = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        raise ConfigError(f"max_answer_bytes must be a whole number of bytes from {low} to {high}, got {value!r}")
    return number
