"""`workspace-images init`: write the `.dlt/config.toml` and `.dlt/secrets.toml` templates of a new folder."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import List, Tuple

from dlt.common.configuration.specs import RuntimeConfiguration

from workspace_images.settings import (
    DEFAULT_MAX_ANSWER_BYTES,
    DEFAULT_MAX_NEW_FIELDS,
    DEFAULT_PROJECT_TIMEOUT,
    MAX_NEW_FIELDS_RANGE,
)

from .checks import DEFAULT_LOCK_TIMEOUT
from .errors import UsageError
from .warehouse import DEFAULT_DB

CONFIG_TEMPLATE = f"""\
# workspace-images settings. Command-line flags override them, and environment variables
# override this file (SOURCES__WORKSPACE_IMAGES__<KEY>, e.g. SOURCES__WORKSPACE_IMAGES__REGIONS).
# Secrets (token, keys, passwords) go in secrets.toml beside this file, never here.

[sources.workspace_images]
# Projects to load, as "REGION:PROJECT_ID" (default: none; set them or discover_projects).
# projects = ["cn-north-4:0605767e1f00d5c32f55c0137fb2b1d7", "ap-southeast-1:8f3b6c2a1d0e4f5a9b7c6d5e4f3a2b1c"]

# List the account's projects through IAM instead of `projects` (default false).
discover_projects = false

# Load only the projects in these regions, e.g. ["cn-north-4"] (default [], every region).
regions = []

# Where the history goes: duckdb, the file {DEFAULT_DB} (default), or a dlt destination.
destination = "duckdb"
# destination = "postgres"    # its credentials in secrets.toml, under [destination.postgres]

# Seconds one project may take, waits for Retry-After included; then it fails (default {DEFAULT_PROJECT_TIMEOUT:g}).
project_timeout = {DEFAULT_PROJECT_TIMEOUT:g}

# Bytes one API answer may hold once decoded (gzip undone); a larger one fails its project (default 16 MiB).
max_answer_bytes = {DEFAULT_MAX_ANSWER_BYTES}

# Columns the images table may get for API fields this tool does not know yet; a field past them
# is kept in raw_values only (default {DEFAULT_MAX_NEW_FIELDS}, at most {MAX_NEW_FIELDS_RANGE[1]}).
max_new_fields = {DEFAULT_MAX_NEW_FIELDS}

# Requests a second each account may send to Workspace, e.g. its API gateway's limit (default: none;
# the gateway's 429 answers set the pace). [sources.workspace_images.accounts.NAME] may set its own.
# rate_limit = 10

# Seconds a run waits for another program holding the DuckDB file (default {DEFAULT_LOCK_TIMEOUT:g}).
lock_timeout = {DEFAULT_LOCK_TIMEOUT:g}

[runtime]
# Seconds one HTTP request may take, its body included (default {RuntimeConfiguration.request_timeout:g}).
request_timeout = {RuntimeConfiguration.request_timeout:g}
"""
"""`.dlt/config.toml` as `init` writes it: what a user sets first, each default written out."""

SECRETS_TEMPLATE = """\
# workspace-images secrets, in .dlt/secrets.toml: readable by you alone (mode 0600), never in git.
# Uncomment ONE of the three credential modes below and fill it in, or set the environment
# variables named beside it instead.

[sources.workspace_images.credentials]
# AK/SK (SOURCES__WORKSPACE_IMAGES__CREDENTIALS__ACCESS_KEY / __SECRET_KEY / __SECURITY_TOKEN)
# access_key = ""
# secret_key = ""
# security_token = ""          # temporary credentials only

# IAM user (SOURCES__WORKSPACE_IMAGES__CREDENTIALS__USER_NAME / __PASSWORD / __DOMAIN_NAME)
# user_name = ""
# password = ""
# domain_name = ""             # the account name

# fixed IAM token, scoped to one project, valid 24 hours (SOURCES__WORKSPACE_IMAGES__CREDENTIALS__TOKEN)
# token = ""

# more accounts: [sources.workspace_images.accounts.NAME.credentials] with the same keys

# PostgreSQL, for destination = "postgres" (DESTINATION__POSTGRES__CREDENTIALS)
# [destination.postgres]
# credentials = "postgresql://USER:PASSWORD@HOST:5432/DATABASE"
"""
"""`.dlt/secrets.toml` as `init` writes it."""


def write_templates(folder: Path) -> List[Path]:
    """Write `folder/.dlt/config.toml` and `folder/.dlt/secrets.toml` (mode 0600), making `.dlt/`
    when needed; nothing is written when either file exists.

    Returns:
        The two files written.

    Raises:
        UsageError: `folder` is missing or not a folder, a file exists, or the folder cannot be written.
    """
    if not folder.exists():
        raise UsageError(f"{folder} does not exist: make it first, or name another folder")
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    settings = folder / ".dlt"
    if settings.exists() and not settings.is_dir():
        raise UsageError(f"{settings} is not a folder")
    files: List[Tuple[Path, str, int]] = [
        (settings / "config.toml", CONFIG_TEMPLATE, 0o666),
        (settings / "secrets.toml", SECRETS_TEMPLATE, 0o600),
    ]
    existing = [str(path) for path, _, _ in files if os.path.lexists(path)]
    if existing:
        verb, it = ("exists", "it") if len(existing) == 1 else ("exist", "them")
        raise UsageError(f"{' and '.join(existing)} already {verb}: init never overwrites "
                         f"(edit {it}, or move {it} away and run init again)")
    made_folder = not settings.exists()
    written: List[Path] = []
    try:
        if made_folder:
            settings.mkdir()
        for path, text, mode in files:
            # created with its mode, never readable by others for a moment; O_EXCL: nothing is overwritten
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            written.append(path)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        if made_folder and settings.is_dir() and not any(settings.iterdir()):
            settings.rmdir()
        raise UsageError(f"cannot write {exc.filename or settings}: {exc.strerror or exc}") from None
    return written


def next_steps(folder: Path, written: List[Path]) -> str:
    """What `init` prints: the files it wrote and what to do next."""
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {shlex.quote(str(folder))} && "
    config, secrets = written
    return "\n".join([
        f"wrote {config}",
        f"wrote {secrets} (mode 0600)",
        "next:",
        f"  1. in {config.name} set projects (or discover_projects = true)",
        f"  2. in {secrets.name} uncomment one credential mode and fill it in",
        f"  3. {where}workspace-images run",
    ])
