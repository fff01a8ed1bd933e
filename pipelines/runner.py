"""Run the pipeline: check settings, extract and load, read back what each project did."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import dlt
import duckdb
from dlt.common.configuration.exceptions import ConfigurationException, ConfigValueCannotBeCoercedException
from dlt.pipeline.exceptions import PipelineStepFailed

from sources.workspace_images import ConfigError, DiscoveryFailed, Progress, WorkspaceCredentials, workspace_images

from .models import DataTestFailed, ModelsResult, ModelsUnavailable, build_models, table_exists
from sources.workspace_images.rows import parse_timestamp

logger = logging.getLogger("workspace_images")

PIPELINE_NAME = "workspace_images"
DATASET_NAME = "workspace_images"
DEFAULT_DB = "workspace_images.duckdb"

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3


class UsageError(Exception):
    """Bad usage or configuration: exit 2 with this one-line message."""


class RunFailed(Exception):
    """The run itself failed (destination, load): exit 3 with this message."""


@dataclass
class RunResult:
    """What one run did."""

    run_id: str
    as_of: datetime
    db_path: Path
    projects: List[Dict[str, Any]] = field(default_factory=list)
    new_versions: int = 0
    retired: int = 0
    seconds: float = 0.0
    models: Optional[ModelsResult] = None

    @property
    def failed(self) -> List[Dict[str, Any]]:
        return [p for p in self.projects if p["status"] != "ok"]

    @property
    def images(self) -> int:
        return sum(p["images"] or 0 for p in self.projects if p["status"] == "ok")

    @property
    def retries(self) -> int:
        return sum(p["retries"] or 0 for p in self.projects)

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.failed else EXIT_OK

    def summary(self) -> str:
        ok = len(self.projects) - len(self.failed)
        return (
            f"run {self.run_id[:12]} as of {self.as_of:%Y-%m-%d %H:%M:%S}Z: {ok}/{len(self.projects)} projects ok, "
            f"{self.images:,} images, {self.new_versions:,} new versions, {self.retired:,} retired, "
            f"{self.retries} retries, {self.seconds:.1f}s -> {self.db_path}"
        )


def parse_as_of(value: Optional[str]) -> Optional[datetime]:
    """Parse `--as-of` (ISO date or timestamp, UTC unless it carries an offset)."""
    if value is None:
        return None
    moment = parse_timestamp(value)
    if moment is None:
        raise UsageError(f"--as-of {value!r} is not a date or timestamp, e.g. 2026-11-27 or 2026-11-27T06:00:00Z")
    return moment


def default_pipelines_dir(db_path: Path) -> Path:
    """dlt's working folder of one DuckDB file: beside it, never dlt's machine-wide default."""
    return db_path.resolve().parent / ".workspace_images" / db_path.name


def make_pipeline(db_path: Path, pipelines_dir: Optional[Path] = None) -> dlt.Pipeline:
    """The `workspace_images` pipeline writing to the DuckDB file `db_path`."""
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        destination=dlt.destinations.duckdb(str(db_path)),
        dataset_name=DATASET_NAME,
        pipelines_dir=str(pipelines_dir or default_pipelines_dir(db_path)),
    )


def run(
    db_path: Path | str = DEFAULT_DB,
    *,
    projects: Optional[List[str]] = None,
    regions: Optional[List[str]] = None,
    endpoint: Optional[str] = None,
    iam_endpoint: Optional[str] = None,
    discover: Optional[bool] = None,
    filters: Optional[Dict[str, Any]] = None,
    concurrency: Optional[int] = None,
    token: Optional[str] = None,
    credentials: Optional[Dict[str, str]] = None,
    accounts: Optional[Dict[str, Any]] = None,
    as_of: Optional[datetime] = None,
    pipelines_dir: Optional[Path] = None,
    on_progress: Optional[Callable[[Progress], None]] = None,
    models: bool = True,
) -> RunResult:
    """Extract every project and load it into `db_path`.

    `token` is a shortcut for `credentials={"token": ...}`; `credentials` holds the
    default account's secrets (see WorkspaceCredentials), `accounts` more accounts.
    Arguments left as None come from `.dlt/config.toml`, `secrets.toml` and
    environment variables, as dlt resolves them. With `models`, the SQL models are
    rebuilt after the load (also when some projects failed: their images stay as
    they were, flagged stale).

    Raises:
        UsageError: a setting is missing or wrong; nothing was written.
        RunFailed: extraction, load or a model's data test failed.
    """
    started = time.monotonic()
    db_path = Path(db_path)
    run_id = uuid.uuid4().hex
    moment = (as_of or datetime.now(timezone.utc)).astimezone(timezone.utc)
    kwargs: Dict[str, Any] = {
        "projects": projects or None,
        "regions": regions or None,
        "endpoint": endpoint,
        "iam_endpoint": iam_endpoint,
        "discover_projects": discover,
        "filters": filters,
        "concurrency": concurrency,
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if token is not None:
        credentials = {**(credentials or {}), "token": token}
    if credentials is not None:
        kwargs["credentials"] = WorkspaceCredentials(**credentials)
    if accounts is not None:
        kwargs["accounts"] = accounts
    if not db_path.parent.exists():
        raise UsageError(f"--db {db_path}: folder {db_path.parent} does not exist")
    try:
        source = workspace_images(as_of=moment, run_id=run_id, on_progress=on_progress, **kwargs)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except DiscoveryFailed as exc:
        raise RunFailed(str(exc)) from None
    except ConfigValueCannotBeCoercedException as exc:
        kind = getattr(exc.hint, "__name__", str(exc.hint))
        raise UsageError(
            f"setting {exc.field_name} must be a {kind}; in an environment variable write it as JSON, "
            f"e.g. SOURCES__WORKSPACE_IMAGES__{exc.field_name.upper()}='[\"cn-north-4\"]' for a list"
        ) from None
    except ConfigurationException as exc:
        raise UsageError(f"configuration: {_first_line(exc)}") from None

    before = read_history(db_path)
    check_as_of_order(db_path, moment, before.latest_as_of)
    pipeline = make_pipeline(db_path, pipelines_dir)
    try:
        pipeline.run(source)
    except PipelineStepFailed as exc:
        cause = exc.__cause__ or exc.exception
        if isinstance(cause, ConfigError):
            raise UsageError(str(cause)) from None
        raise RunFailed(f"{exc.step} step failed: {_first_line(cause)}") from None

    result = RunResult(run_id=run_id, as_of=moment, db_path=db_path)
    after = read_history(db_path, run_id)
    result.projects = after.projects
    result.new_versions, result.retired = after.versions - before.versions, after.retired - before.retired
    if models:
        result.models = run_models(db_path)
    result.seconds = time.monotonic() - started
    return result


def run_models(db_path: Path) -> ModelsResult:
    """Build the SQL models, turning their failures into the CLI's errors."""
    try:
        return build_models(db_path)
    except ModelsUnavailable as exc:
        raise UsageError(str(exc)) from None
    except DataTestFailed as exc:
        raise RunFailed(f"{exc}; the previous models were kept") from None
    except duckdb.Error as exc:
        raise RunFailed(f"models: {_first_line(exc)}") from None


@dataclass
class HistoryState:
    """What a DuckDB file holds of earlier loads, read in one connection."""

    latest_as_of: Optional[datetime] = None
    versions: int = 0
    retired: int = 0
    projects: List[Dict[str, Any]] = field(default_factory=list)


def read_history(db_path: Path, run_id: Optional[str] = None) -> HistoryState:
    """The latest `as_of`, the version counts of `images` and, given `run_id`, that run's
    `project_runs` rows; empty before the first load."""
    state = HistoryState()
    if not db_path.exists():
        return state
    try:
        with duckdb.connect(str(db_path), read_only=True) as con:
            if table_exists(con, DATASET_NAME, "project_runs"):
                runs = f"{DATASET_NAME}.project_runs"
                state.latest_as_of = con.execute(f"select max(as_of) from {runs}").fetchone()[0]
                if run_id is not None:
                    cursor = con.execute(
                        f"select * from {runs} where run_id = ? order by region, project_id", [run_id]
                    )
                    names = [d[0] for d in cursor.description]
                    state.projects = [dict(zip(names, row)) for row in cursor.fetchall()]
            if table_exists(con, DATASET_NAME, "images"):
                state.versions, state.retired = con.execute(
                    f"select count(*), count(_dlt_valid_to) from {DATASET_NAME}.images"
                ).fetchone()
    except duckdb.Error as exc:
        raise RunFailed(f"cannot read {db_path}: {_first_line(exc)}") from None
    return state


def check_as_of_order(db_path: Path, as_of: datetime, latest: Optional[datetime]) -> None:
    """Refuse a load dated before the latest one already in the file.

    SCD2 validity only makes sense when snapshots are loaded in time order: a
    replay at the same timestamp is fine, an older one would close versions
    before they opened.
    """
    if latest is not None and as_of < latest:
        raise UsageError(
            f"--as-of {as_of:%Y-%m-%d %H:%M:%S}Z is before the latest load in {db_path} "
            f"({latest.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z): load snapshots in time order, "
            "or backfill into a new file"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]
