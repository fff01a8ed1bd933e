"""Run the pipeline: check settings, extract and load, read back what each project did."""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import dlt
import duckdb
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.exceptions import ConfigurationException, ConfigValueCannotBeCoercedException
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.common.destination.exceptions import DestinationTerminalException
from dlt.destinations.exceptions import DatabaseException
from dlt.common.time import to_seconds
from dlt.load.exceptions import LoadClientJobFailed
from dlt.pipeline.exceptions import PipelineStepFailed

from workspace_images.source import ConfigError, DiscoveryFailed, Progress, WorkspaceCredentials, workspace_images
from workspace_images.source.client import failure_text
from workspace_images.source.rows import parse_timestamp

from .locking import causes, is_lock_conflict, wait_for_database
from .models import DataTestFailed, ModelsMissing, ModelsResult, ModelsUnavailable, build_models, check_dataset
from .warehouse import DATASET_NAME, PIPELINE_NAME, Session, Target, connect, hold, literal

logger = logging.getLogger("workspace_images")

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_FAILED, EXIT_LOCKED = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Bad usage or configuration: exit 2 with this one-line message."""


class RunFailed(Exception):
    """The run itself failed (destination, load): exit 3 with this message."""


@dataclass
class RunResult:
    """What one run did."""

    run_id: str
    as_of: datetime
    target: Target
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
            f"{self.retries} retries, {self.seconds:.1f}s -> {self.target.label}"
        )


EARLIEST_AS_OF = datetime(2000, 1, 1, tzinfo=timezone.utc)
"""Validity timestamps before this are refused: no Workspace image is that old."""

DEFAULT_LOCK_TIMEOUT = 120.0
"""Seconds a run waits for a program holding the DuckDB file open (`lock_timeout`)."""


def parse_as_of(value: Optional[str]) -> Optional[datetime]:
    """Parse `--as-of` (ISO date or timestamp, UTC unless it carries an offset)."""
    if value is None:
        return None
    moment = parse_timestamp(value)
    if moment is None:
        raise UsageError(f"--as-of {value!r} is not a date or timestamp, e.g. 2026-11-27 or 2026-11-27T06:00:00Z")
    return moment


def check_as_of(as_of: Optional[datetime], now: Optional[datetime] = None) -> datetime:
    """The validity timestamp of a run: `as_of` in UTC (now when None), never in the future.

    A future timestamp would lock the file against every later run (loads must come
    in time order), so it is refused, and so is one before 2000.
    """
    now = now or datetime.now(timezone.utc)
    if as_of is None:
        return now
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=timezone.utc)
    moment = as_of.astimezone(timezone.utc)
    if moment > now:
        raise UsageError(
            f"--as-of {moment:%Y-%m-%d %H:%M:%S}Z is in the future (now {now:%Y-%m-%d %H:%M:%S}Z): "
            "a load can only be dated when it happened or earlier"
        )
    if moment < EARLIEST_AS_OF:
        raise UsageError(f"--as-of {moment:%Y-%m-%d}Z is before {EARLIEST_AS_OF:%Y-%m-%d}: not a load date")
    return moment


def default_pipelines_dir(db_path: Path) -> Path:
    """dlt's working folder of one DuckDB file: beside it, never dlt's machine-wide default."""
    return Target(db_path=Path(db_path)).default_pipelines_dir()


def resolve_target(db_path: Optional[Path | str], destination: Optional[str]) -> Target:
    """Where a run loads: `destination` (else `destination` of `[sources.workspace_images]`,
    else DuckDB) and, for DuckDB, the file `db_path` (else DEFAULT_DB); its settings checked."""
    if destination is None:
        destination = dlt.config.get(f"sources.{PIPELINE_NAME}.destination")
    try:
        target = Target.of(destination, Path(db_path) if db_path is not None else None)
        target.check_configuration()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return target


def check_paths(db_path: Optional[Path], pipelines_dir: Path) -> None:
    """Refuse, before anything is written, a database or working folder the run cannot use.

    Raises:
        UsageError: a folder is missing or not writable, the database is not a file, or
            the working folder's path holds a `'` (dlt pastes it into SQL unescaped).
    """
    if db_path is not None:
        folder = db_path.parent
        if not folder.is_dir():
            raise UsageError(f"--db {db_path}: folder {folder} does not exist")
        if db_path.exists() and not db_path.is_file():
            raise UsageError(f"--db {db_path} is not a file")
        _check_writable(folder, f"--db {db_path}")
    if "'" in str(pipelines_dir.resolve()):
        raise UsageError(
            f"dlt's working folder {pipelines_dir} has a ' in its path, which dlt cannot load from: "
            "move the database to a folder without one, or pass --pipelines-dir elsewhere"
        )
    existing = next((p for p in [pipelines_dir, *pipelines_dir.parents] if p.exists()), None)
    if existing is not None and existing != pipelines_dir and not existing.is_dir():
        raise UsageError(f"--pipelines-dir {pipelines_dir}: {existing} is not a folder")
    if existing is not None and existing.is_dir():
        _check_writable(existing, f"dlt's working folder {pipelines_dir}")


def _check_writable(folder: Path, what: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from None


def failure_of(project: Mapping[str, Any]) -> str:
    """`HTTP 403 APIG.0302: <message>` of a failed `project_runs` row."""
    return failure_text(project.get("http_status"), project.get("error_code"), project.get("error_msg"))


def check_runtime_settings() -> None:
    """Refuse `[runtime]` request settings that would fail every request (exit 2, nothing written)."""
    try:
        config = resolve_configuration(RuntimeConfiguration())
    except ConfigValueCannotBeCoercedException as exc:
        raise UsageError(f"[runtime] {exc.field_name} must be a number") from None
    timeout = config.request_timeout
    values = timeout if isinstance(timeout, tuple) else (timeout,)
    if any(to_seconds(v) <= 0 for v in values):
        raise UsageError(f"[runtime] request_timeout must be more than 0 seconds, got {timeout!r}")
    if config.request_max_attempts < 1:
        raise UsageError(f"[runtime] request_max_attempts must be at least 1, got {config.request_max_attempts}")
    if config.request_backoff_factor < 0 or to_seconds(config.request_max_retry_delay) < 0:
        raise UsageError("[runtime] request_backoff_factor and request_max_retry_delay must be 0 or more")


def storage_version_setting(value: Optional[str]) -> Optional[str]:
    """The DuckDB storage version a new database file is written in: the argument, else
    `duckdb_storage_version` of `[sources.workspace_images]`; None for DuckDB's own default.

    Raises:
        UsageError: DuckDB knows no such version.
    """
    if value is None:
        value = dlt.config.get(f"sources.{PIPELINE_NAME}.duckdb_storage_version")
    if value in (None, ""):
        return None
    version = str(value).strip()
    try:
        duckdb.connect(":memory:", config={"storage_compatibility_version": version}).close()
    except duckdb.Error:
        raise UsageError(
            f"duckdb_storage_version {version!r} is not a DuckDB version DuckDB {duckdb.__version__} can write, "
            "e.g. v1.0.0"
        ) from None
    return version


def create_with_storage_version(db_path: Path, version: str) -> None:
    """Create `db_path` in storage `version`, so DuckDB readers from that version on open it.

    The version of a file is set when it is created and kept by every later write; an
    existing file in another version is left as it is, with a warning.
    """
    if not db_path.exists():
        duckdb.connect(str(db_path), config={"storage_compatibility_version": version}).close()
        logger.info("created %s in DuckDB storage version %s", db_path, version)
        return
    with duckdb.connect(str(db_path), read_only=True) as con:
        tags = con.execute(
            "select tags from duckdb_databases() where database_name = current_database()"
        ).fetchone()[0]
    found = (tags or {}).get("storage_version", "")
    if not found.startswith(version):
        logger.warning("%s is in DuckDB storage version %s, not %s: the version is set when a file is created; "
                       "copy it into a new file to change it", db_path, found or "unknown", version)


def lock_timeout_setting(value: Optional[float]) -> float:
    """Seconds to wait for a program that holds the DuckDB file: the argument, else
    `lock_timeout` of `[sources.workspace_images]`, else DEFAULT_LOCK_TIMEOUT."""
    if value is None:
        value = dlt.config.get(f"sources.{PIPELINE_NAME}.lock_timeout")
    if value is None:
        return DEFAULT_LOCK_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"lock_timeout must be a number of seconds, got {value!r}") from None
    if not 0 <= seconds < float("inf"):
        raise UsageError(f"lock_timeout must be 0 or more seconds, got {value!r}")
    return seconds


def run(
    db_path: Optional[Path | str] = None,
    *,
    destination: Optional[str] = None,
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
    project_timeout: Optional[float] = None,
    lock_timeout: Optional[float] = None,
    duckdb_storage_version: Optional[str] = None,
) -> RunResult:
    """Extract every project and load it into the DuckDB file `db_path` (DEFAULT_DB when None),
    or into `destination`: any dlt destination with SQL (`postgres`, `motherduck`...), its
    credentials from dlt's configuration; None reads `destination` from the config.

    `token` is a shortcut for `credentials={"token": ...}`; `credentials` holds the
    default account's secrets (see WorkspaceCredentials), `accounts` more accounts.
    Arguments left as None come from `.dlt/config.toml`, `secrets.toml` and
    environment variables, as dlt resolves them. With `models`, the SQL models are
    rebuilt after the load (also when some projects failed: their images stay as
    they were, flagged stale).

    The run holds `<db>.lock` (for another destination, `<working folder>.lock`) from
    before it touches the database to the end, so runs of one database never overlap. Load packages that an earlier run left
    (it was killed, or could not write the file) are loaded first, before this
    run fetches anything. A program that holds the DuckDB file open is waited for
    up to `lock_timeout` seconds at each write.

    Raises:
        UsageError: a setting is missing or wrong; nothing was written.
        LockHeld: another run holds this database's lock; nothing was done.
        RunFailed: extraction, load or a model's data test failed.
    """
    started = time.monotonic()
    check_runtime_settings()
    target = resolve_target(db_path, destination)
    run_id = uuid.uuid4().hex
    moment = check_as_of(as_of)
    workdir = Path(pipelines_dir) if pipelines_dir else target.default_pipelines_dir()
    check_paths(target.db_path, workdir)
    wait = lock_timeout_setting(lock_timeout)
    storage = storage_version_setting(duckdb_storage_version)
    if storage is not None and not target.is_file:
        raise UsageError(f"duckdb_storage_version is for a DuckDB file, not destination {target.destination}")
    where = target.label
    kwargs: Dict[str, Any] = {
        "projects": projects or None,
        "regions": regions or None,
        "endpoint": endpoint,
        "iam_endpoint": iam_endpoint,
        "discover_projects": discover,
        "filters": filters,
        "concurrency": concurrency,
        "project_timeout": project_timeout,
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if token is not None:
        credentials = {**(credentials or {}), "token": token}
    if credentials is not None:
        kwargs["credentials"] = WorkspaceCredentials(**credentials)
    if accounts is not None:
        kwargs["accounts"] = accounts
    fetched: List[Progress] = []

    def progress(state: Progress) -> None:
        fetched[:] = [state]
        if on_progress is not None:
            on_progress(state)

    try:
        source = workspace_images(as_of=moment, run_id=run_id, on_progress=progress, **kwargs)
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

    with hold(target, workdir):
        if storage is not None:
            wait_for_database(lambda: create_with_storage_version(target.db_path, storage), where, wait,
                              "checking its storage version")
        pipeline = target.pipeline(workdir)
        if not pipeline.default_schema_name:
            # no local state (a new working folder): take dlt's state and schema from the database.
            # Otherwise the working folder is the truth, and the database is not opened for writing
            # before the load: a program holding it open then costs this run its load, not its fetch.
            _step(pipeline.sync_destination, where, wait, "reading dlt's state")
        finish_pending_loads(pipeline, where, wait)
        before = wait_for_database(lambda: read_history(target, pipeline=pipeline), where, wait,
                                   "reading the history")
        if before.unfinished:
            wait_for_database(lambda: drop_unfinished_run_log(target, pipeline), where, wait, "tidying the run log")
        check_as_of_order(where, moment, before.latest_as_of)
        _step(lambda: pipeline.extract(source, loader_file_format=target.loader_file_format), where, None,
              "extracting")
        _step(pipeline.normalize, where, None, "normalizing")
        _step(lambda: load_in_one_opening(pipeline, target), where, wait, "loading")

        result = RunResult(run_id=run_id, as_of=moment, target=target)
        after = wait_for_database(lambda: read_history(target, run_id, pipeline), where, wait, "reading the run log")
        expected = fetched[0].total if fetched else None
        if expected is None or len(after.projects) != expected:
            raise RunFailed(
                f"the load ended but {where} holds {len(after.projects)} project_runs rows of this run, "
                f"not {expected if expected is not None else 'the ones fetched'}: nothing of this run counts "
                "as loaded; run again"
            )
        result.projects = after.projects
        result.new_versions, result.retired = after.versions - before.versions, after.retired - before.retired
        if models:
            result.models = run_models(target, wait, pipeline=pipeline)
    result.seconds = time.monotonic() - started
    return result


def _step(action: Callable[[], Any], where: str, wait: Optional[float], what: str) -> Any:
    """Run one pipeline step, and when it writes the database (`wait` given) wait for the DuckDB
    file while another program holds it; turn its failure into the CLI's error. Extraction and
    normalization are never run twice: they do not touch the database, and their source is used up."""
    try:
        if wait is None:
            return action()
        return wait_for_database(action, where, wait, what)
    except PipelineStepFailed as exc:
        cause = exc.__cause__ or exc.exception
        if isinstance(cause, ConfigError):
            raise UsageError(str(cause)) from None
        raise RunFailed(f"{exc.step} step failed: {_reason(exc)}") from None


DUCKDB_CONNECT_SETTINGS = ("custom_user_agent",)
"""Settings of `[destination.duckdb.credentials] global_config` that dlt gives DuckDB when it
connects; DuckDB opens a file once per process only for connections with equal such settings."""


def load_in_one_opening(pipeline: dlt.Pipeline, target: Target) -> Any:
    """`pipeline.load()`, with a DuckDB file kept open from its first job to its last.

    dlt opens and closes the file around each load job, and each closing writes the
    file out (a checkpoint) -- the staging copy of the rows, then the history. Held open
    here, the file is written out once, when this closes it at the end.
    """
    if not target.is_file:
        return pipeline.load()
    try:
        with pipeline.destination_client() as client:
            settings = getattr(client.config.credentials, "global_config", None) or {}
        # opened as dlt opens it (the same settings at connect), so dlt's connections join this one
        held = duckdb.connect(
            str(target.db_path), config={k: v for k, v in settings.items() if k in DUCKDB_CONNECT_SETTINGS}
        )
    except Exception as exc:
        if is_lock_conflict(exc):
            raise  # another program holds the file: waited for like any write
        return pipeline.load()  # let dlt open it, and say what is wrong, as it does
    with held:
        return pipeline.load()


def finish_pending_loads(pipeline: dlt.Pipeline, where: str, wait: float) -> None:
    """Load what an earlier run extracted but did not load, before this run fetches anything.

    dlt keeps the load packages of a run that was killed, or could not write the
    database; left there, they would be loaded in place of the next run's data.
    When they cannot be loaded the run stops (exit 3) and keeps them: a package the
    database refuses for good is dropped only by hand, with the command the message gives.
    """
    if not pipeline.has_pending_data:
        return
    pending = pipeline.list_extracted_load_packages() + pipeline.list_normalized_load_packages()
    logger.warning("loading %d package(s) an earlier run left unloaded (%s) before this run",
                   len(pending), ", ".join(pending))
    try:
        if pipeline.list_extracted_load_packages():
            wait_for_database(pipeline.normalize, where, wait, "normalizing an earlier run's data")
        wait_for_database(pipeline.load, where, wait, "loading an earlier run's data")
    except PipelineStepFailed as exc:
        reason = _reason(exc)
        drop = (f"if it can never load, drop it: dlt pipeline --pipelines-dir {pipeline.pipelines_dir} "
                f"{pipeline.pipeline_name} abort-packages")
        if _terminal(exc):
            raise RunFailed(
                f"an earlier run's data ({', '.join(pending)}) was refused by the database for good ({reason}); "
                f"nothing new was fetched; {drop}"
            ) from None
        raise RunFailed(
            f"an earlier run's data ({', '.join(pending)}) could not be loaded ({exc.step}: {reason}); "
            f"nothing new was fetched; it is tried again by the next run; {drop}"
        ) from None


UNFINISHED_RUNS = (f"from {DATASET_NAME}.project_runs where _dlt_load_id not in "
                   f"(select load_id from {DATASET_NAME}._dlt_loads where status = 0)")
"""The `project_runs` rows of load packages dlt never finished."""


def drop_unfinished_run_log(target: Target, pipeline: Optional[dlt.Pipeline] = None) -> int:
    """Delete `project_runs` rows of load packages dlt never finished (aborted by hand).

    Called when no package is pending and `read_history` found such rows: they belong to
    no load that will ever complete, and would vouch for images that never landed.
    Returns how many went.
    """
    try:
        with connect(target, pipeline=pipeline) as session:
            gone = session.value(f"select count(*) {UNFINISHED_RUNS}")
            session.execute(f"delete {UNFINISHED_RUNS}")
    except Exception as exc:
        if not _database_error(exc):
            raise
        raise RunFailed(f"cannot tidy {target.label}: {_first_line(exc)}") from None
    if gone:
        logger.warning("removed %d project_runs row(s) of load packages that never finished", gone)
    return gone


def _terminal(exc: BaseException) -> bool:
    return any(isinstance(cause, (LoadClientJobFailed, DestinationTerminalException)) for cause in causes(exc))


def run_models(target: Target | Path, wait: Optional[float] = None, raw_dataset: str = DATASET_NAME,
               pipeline: Optional[dlt.Pipeline] = None, pipelines_dir: Optional[Path] = None) -> ModelsResult:
    """Build the SQL models from the tables of `raw_dataset`, waiting up to `wait` seconds for a
    program holding a DuckDB file; turn their failures into the CLI's errors."""
    if not isinstance(target, Target):
        target = Target(db_path=Path(target))
    seconds = lock_timeout_setting(wait)
    try:
        check_dataset(raw_dataset)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def build() -> ModelsResult:
        if target.is_file:
            return build_models(target, raw_dataset=raw_dataset)
        with connect(target, pipeline=pipeline, pipelines_dir=pipelines_dir) as session:
            return build_models(target, raw_dataset=raw_dataset, session=session)

    try:
        return wait_for_database(build, target.label, seconds, "building the models")
    except ModelsUnavailable as exc:
        raise UsageError(str(exc)) from None
    except DataTestFailed as exc:
        raise RunFailed(f"{exc}; the previous models were kept") from None
    except ModelsMissing as exc:
        raise RunFailed(str(exc)) from None
    except Exception as exc:
        if not _database_error(exc):
            raise
        raise RunFailed(f"models: {_reason(exc)}") from None


def _database_error(exc: BaseException) -> bool:
    """Whether `exc` is the database's (DuckDB's, or one dlt's SQL client raised)."""
    return any(isinstance(cause, (duckdb.Error, DatabaseException)) for cause in causes(exc))


@dataclass
class HistoryState:
    """What a DuckDB file holds of earlier loads, read in one connection."""

    latest_as_of: Optional[datetime] = None
    unfinished: int = 0
    """`project_runs` rows of load packages dlt never finished."""
    versions: int = 0
    retired: int = 0
    projects: List[Dict[str, Any]] = field(default_factory=list)


def read_history(target: Target | Path, run_id: Optional[str] = None,
                 pipeline: Optional[dlt.Pipeline] = None) -> HistoryState:
    """The latest `as_of`, the version counts of `images` and, given `run_id`, that run's
    `project_runs` rows; empty before the first load."""
    if not isinstance(target, Target):
        target = Target(db_path=Path(target))
    state = HistoryState()
    if target.is_file and not target.db_path.exists():
        return state
    try:
        with connect(target, read_only=True, pipeline=pipeline) as session:
            if session.table_exists(DATASET_NAME, "project_runs"):
                _check_foreign(session, target.label)
                # only rows of loads dlt finished: a pending or aborted package vouches for nothing
                runs = (f"(select * from {DATASET_NAME}.project_runs where _dlt_load_id in "
                        f"(select load_id from {DATASET_NAME}._dlt_loads where status = 0)) as finished")
                state.latest_as_of = session.value(f"select max(as_of) from {runs}")
                state.unfinished = session.value(f"select count(*) {UNFINISHED_RUNS}")
                if run_id is not None:
                    names, rows = session.fetch(
                        f"select * from {runs} where run_id = {literal(run_id)} order by region, project_id"
                    )
                    state.projects = [
                        {k: v for k, v in zip(names, row) if k not in ("_dlt_load_id", "_dlt_id")} for row in rows
                    ]
            if session.table_exists(DATASET_NAME, "images"):
                _, rows = session.fetch(f"select count(*), count(_dlt_valid_to) from {DATASET_NAME}.images")
                state.versions, state.retired = rows[0]
    except Exception as exc:
        if not _database_error(exc):
            raise
        raise RunFailed(f"cannot read {target.label}: {_reason(exc)}") from None
    return state


EXPECTED_TYPES = {
    ("project_runs", "as_of"): "timestamp with time zone",
    ("project_runs", "run_id"): "character varying",
    ("images", "_dlt_valid_from"): "timestamp with time zone",
}
"""Columns whose type shows a table was written by this tool (as information_schema names
the types on PostgreSQL; DuckDB's names are mapped onto these)."""
SAME_TYPES = {"varchar": "character varying", "text": "character varying", "timestamptz": "timestamp with time zone"}


def _check_foreign(session: Session, where: str) -> None:
    """Refuse a database whose `workspace_images` tables some other program made. The column
    types are checked on DuckDB and PostgreSQL; elsewhere, that the columns are there."""
    found = {(table, column): kind.lower() for table, column, kind in session.columns(DATASET_NAME)}
    tables = {table for table, _ in found}
    check_types = session.dialect in ("duckdb", "postgres")
    for (table, column), kind in EXPECTED_TYPES.items():
        if table not in tables:
            continue
        have = found.get((table, column))
        if have is not None and (not check_types or SAME_TYPES.get(have, have) == kind):
            continue
        raise UsageError(
            f"{where} has a table {DATASET_NAME}.{table} that workspace-images did not write "
            f"(column {column} is {have or 'missing'}, not {kind}): "
            "use another --db or dataset, or rename that schema"
        )


def check_as_of_order(where: str, as_of: datetime, latest: Optional[datetime]) -> None:
    """Refuse a load dated before the latest one already in the file.

    SCD2 validity only makes sense when snapshots are loaded in time order: a
    replay at the same timestamp is fine, an older one would close versions
    before they opened.
    """
    if latest is not None and as_of < latest:
        raise UsageError(
            f"--as-of {as_of:%Y-%m-%d %H:%M:%S}Z is before the latest load in {where} "
            f"({latest.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}Z): load snapshots in time order, "
            "or backfill into a new file"
        )


def _first_line(exc: BaseException) -> str:
    """One line that says what `exc` is; the last line of a traceback that dlt put in a message."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()] or [exc.__class__.__name__]
    if lines[0].startswith("Traceback") or lines[0].endswith("Traceback (most recent call last):"):
        return lines[-1].strip()
    return lines[0]


def _reason(exc: BaseException) -> str:
    """What made a pipeline step fail, in one line: the database's own error when dlt has it."""
    start = exc.__cause__ or getattr(exc, "exception", None) or exc
    last = start
    for cause in causes(start):
        inner = getattr(cause, "client_exception", None)
        if isinstance(inner, BaseException):
            return _first_line(inner)
        last = cause
    return _first_line(last)
