"""Run the pipeline: extract and load every project, read back what each one did, build the models."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import dlt
from dlt.common.configuration.exceptions import ConfigurationException, ConfigValueCannotBeCoercedException
from dlt.pipeline.exceptions import PipelineStepFailed

from workspace_images.credentials import credentials_from
from workspace_images.source import ConfigError, DiscoveryFailed, Progress, workspace_images
from workspace_images.outcomes import throttling_text
from workspace_images.throttle import ThrottleStats
from workspace_images.config import env_name
from workspace_images.failures import failure_text
from workspace_images.settings import SOURCE_SECTION

from .checks import (
    check_as_of,
    check_as_of_order,
    check_paths,
    check_runtime_settings,
    create_with_storage_version,
    lock_timeout_setting,
    resolve_target,
    storage_version_setting,
)
from .errors import EXIT_OK, EXIT_PARTIAL, RunFailed, UsageError, first_line, is_database_error, reason_of
from .dlt_state import drop_working_state, local_state_hash, mismatch, stored_state_hash
from .history import drop_unfinished_run_log, read_history
from .set_aside import refused_for_content, set_aside
from .locking import wait_for_database
from .models import (
    DataTestFailed,
    ModelsMissing,
    ModelsOfAnotherDataset,
    ModelsResult,
    ModelsUnavailable,
    build_models,
    check_dataset,
)
from .warehouse import DATASET_NAME, Target, connect, dlt_opens_file, hold

logger = logging.getLogger("workspace_images")


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
    throttling: Dict[str, ThrottleStats] = field(default_factory=dict)
    """Each account that was throttled or waited for its pace, by name (empty when none was)."""

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
            f"{self.retries} retries{throttling_text(self.throttling, ', ')}, {self.seconds:.1f}s -> {self.target.label}"
        )

    def throttled_summary(self) -> Dict[str, Dict[str, Any]]:
        """`--json`'s `throttled`: per account its 429s, seconds waited, pace reached, and the 429s of each
        of its projects that met any (`{"default": {"throttled": 12, ..., "projects": {"cn-north-4:ab12": 3}}}`)."""
        return {
            name: {
                "throttled": stats.throttled, "waited": round(stats.waited, 3),
                "rate": round(stats.rate, 3) if stats.rate is not None else None,
                "projects": {f"{p['region']}:{p['project_id']}": p["throttled"] for p in self.projects
                             if p.get("account") == name and p.get("throttled")},
            }
            for name, stats in self.throttling.items()
        }


def failure_of(project: Mapping[str, Any]) -> str:
    """`HTTP 403 APIG.0302: <message>` of a failed `project_runs` row."""
    return failure_text(project.get("http_status"), project.get("error_code"), project.get("error_msg"))


def failed_line(project: Mapping[str, Any]) -> str:
    """`failed: REGION:PROJECT_ID: HTTP 403 APIG.0302: <message>`, as the CLI and the DAG say it."""
    return f"failed: {project['region']}:{project['project_id']}: {failure_of(project)}"


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
    rate_limit: Optional[float] = None,
    lock_timeout: Optional[float] = None,
    duckdb_storage_version: Optional[str] = None,
) -> RunResult:
    """Extract every project and load it into the DuckDB file `db_path` (DEFAULT_DB when None),
    or into `destination`: any dlt destination with SQL (`postgres`, `motherduck`...), its
    credentials from dlt's configuration; None reads `destination` from the config.

    `token` is a shortcut for `credentials={"token": ...}`; `credentials` holds the
    default account's secrets (keys of one mode, see `credentials_from`), `accounts` more accounts.
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
        "rate_limit": rate_limit,
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if token is not None:
        credentials = {**(credentials or {}), "token": token}
    if accounts is not None:
        kwargs["accounts"] = accounts
    fetched: List[Progress] = []

    def progress(state: Progress) -> None:
        fetched[:] = [state]
        if on_progress is not None:
            on_progress(state)

    try:
        if credentials is not None:
            kwargs["credentials"] = credentials_from(credentials)
        source = workspace_images(as_of=moment, run_id=run_id, on_progress=progress, **kwargs)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except DiscoveryFailed as exc:
        raise RunFailed(str(exc)) from None
    except ConfigValueCannotBeCoercedException as exc:
        kind = getattr(exc.hint, "__name__", str(exc.hint))
        raise UsageError(
            f"setting {exc.field_name} must be a {kind}; in an environment variable write it as JSON, "
            f"e.g. {env_name(SOURCE_SECTION + '.' + exc.field_name)}='[\"cn-north-4\"]' for a list"
        ) from None
    except ConfigurationException as exc:
        raise UsageError(f"configuration: {first_line(exc)}") from None

    with hold(target, workdir):
        if storage is not None and target.db_path is not None:  # a file's, as checked above
            db_file = target.db_path
            wait_for_database(lambda: create_with_storage_version(db_file, storage), where, wait,
                              "checking its storage version")
        pipeline = target.pipeline(workdir)
        finish_pending_loads(target, pipeline, where, wait)
        pipeline = take_database_state(target, pipeline, workdir, where, wait)
        before = wait_for_database(lambda: read_history(target, pipeline=pipeline), where, wait,
                                   "reading the history")
        if before.unfinished:
            wait_for_database(lambda: drop_unfinished_run_log(target, pipeline), where, wait, "tidying the run log")
        check_as_of_order(where, moment, before.latest_as_of)
        _step(lambda: pipeline.extract(source, loader_file_format=target.loader_file_format), where, None,
              "extracting")
        _step(pipeline.normalize, where, None, "normalizing")
        _step(lambda: load_or_set_aside(target, pipeline, where, wait, "loading"), where, None, "loading")

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
        result.throttling = dict(fetched[0].throttling) if fetched else {}
        result.new_versions, result.retired = after.versions - before.versions, after.retired - before.retired
        if models:
            try:
                result.models = run_models(target, wait, pipeline=pipeline)
            except UsageError as exc:  # the load is in: not "nothing was written"
                raise RunFailed(f"models: {exc}; this run's load is in place") from None
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
        raise RunFailed(f"{exc.step} step failed: {reason_of(exc)}") from None


def in_file(target: Target, pipeline: dlt.Pipeline, step: Callable[[], Any], read_only: bool = False) -> Any:
    """A dlt step that reaches the database, with a DuckDB file opened once for all of it
    (`dlt_opens_file`, `read_only` for a step that only reads): under a catalog name that no
    schema clashes with, and for a load, one opening for all its jobs (each opening and closing
    writes the file out, the staging copy of the rows and then the history; opened once, it is
    written out once, at the end)."""
    with dlt_opens_file(target, pipeline, read_only=read_only):
        return step()


def take_database_state(target: Target, pipeline: dlt.Pipeline, workdir: Path, where: str,
                        wait: float) -> dlt.Pipeline:
    """The pipeline with the dlt state the database holds: the working folder's own when it is the
    latest the database stored (an ordinary run: one small read-only query), else the database's.

    Another working folder, a link to the file or another machine may have loaded the database
    since this folder did; going on from this folder's state would give a new API field another
    column, or another type, than the database's history has. The database is read only: a
    program holding it open costs this run its load, not its fetch. Pending packages are loaded
    before (`finish_pending_loads`): their state is the one to compare.
    """
    if target.file_missing:
        stored = None  # a new file: it holds nothing, and an opening to read would not create it
    else:
        stored = _step(lambda: in_file(target, pipeline, lambda: stored_state_hash(pipeline), read_only=True),
                       where, wait, "reading dlt's state")
    why = mismatch(local_state_hash(pipeline), stored, workdir, where)
    if why is None:
        return pipeline
    pipeline = drop_working_state(pipeline)
    if stored is None:
        logger.info("dropped dlt's state in %s: %s", workdir, why)
        return pipeline
    _step(lambda: in_file(target, pipeline, pipeline.sync_destination, read_only=True), where, wait,
          "restoring dlt's state")
    logger.info("restored dlt's state from %s: %s", where, why)
    return pipeline


def finish_pending_loads(target: Target, pipeline: dlt.Pipeline, where: str, wait: float) -> None:
    """Load what an earlier run extracted but did not load, before this run fetches anything.

    dlt keeps the load packages of a run that was killed, or could not write the
    database; left there, they would be loaded in place of the next run's data.
    When they cannot be loaded the run stops (exit 3) and keeps them: a package the
    database refuses for good is dropped only by hand, with the command the message gives.
    """
    if not pipeline.has_pending_data:
        return
    pending = [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]
    logger.warning("loading %d package(s) an earlier run left unloaded (%s) before this run",
                   len(pending), ", ".join(pending))
    try:
        if pipeline.list_extracted_load_packages():
            wait_for_database(pipeline.normalize, where, wait, "normalizing an earlier run's data")
        load_or_set_aside(target, pipeline, where, wait, "loading an earlier run's data")
    except PipelineStepFailed as exc:
        drop = (f"if it can never load, drop it: dlt pipeline --pipelines-dir {pipeline.pipelines_dir} "
                f"{pipeline.pipeline_name} abort-packages")
        raise RunFailed(
            f"an earlier run's data ({', '.join(pending)}) could not be loaded ({exc.step}: {reason_of(exc)}); "
            f"nothing new was fetched; it is tried again by the next run; {drop}"
        ) from None


def load_or_set_aside(target: Target, pipeline: dlt.Pipeline, where: str, wait: float, what: str) -> None:
    """Load the pending packages. One the database refuses for its content is set aside and its
    projects recorded as failed (`set_aside.py`), and loading goes on with the next; any other
    failure raises PipelineStepFailed and leaves the package pending for the next run."""
    in_database = lambda step: wait_for_database(  # noqa: E731
        lambda: in_file(target, pipeline, step), where, wait, "setting a refused package aside")
    while True:
        try:
            wait_for_database(lambda: in_file(target, pipeline, pipeline.load), where, wait, what)
            return
        except PipelineStepFailed as exc:
            if not (refused_for_content(exc) and exc.load_id):
                raise
            try:
                set_aside(pipeline, exc.load_id, reason_of(exc), in_database)
            except PipelineStepFailed as again:
                raise RunFailed(f"setting refused package {exc.load_id} aside failed: {reason_of(again)}") from None
        if not pipeline.has_pending_data:
            return


def run_models(target: Target | Path, wait: Optional[float] = None, raw_dataset: str = DATASET_NAME,
               pipeline: Optional[dlt.Pipeline] = None, pipelines_dir: Optional[Path] = None,
               replace: bool = False) -> ModelsResult:
    """Build the SQL models from the tables of `raw_dataset`, waiting up to `wait` seconds for a
    program holding a DuckDB file; turn their failures into the CLI's errors. Models built from
    another dataset are replaced only with `replace`."""
    if not isinstance(target, Target):
        target = Target(db_path=Path(target))
    seconds = lock_timeout_setting(wait)
    try:
        check_dataset(raw_dataset)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def build() -> ModelsResult:
        if target.is_file:
            return build_models(target, raw_dataset=raw_dataset, replace=replace)
        with connect(target, pipeline=pipeline, pipelines_dir=pipelines_dir) as session:
            return build_models(target, raw_dataset=raw_dataset, session=session, replace=replace)

    try:
        return wait_for_database(build, target.label, seconds, "building the models")
    except (ModelsUnavailable, ModelsOfAnotherDataset) as exc:
        raise UsageError(str(exc)) from None
    except DataTestFailed as exc:
        raise RunFailed(f"{exc}; the previous models were kept") from None
    except ModelsMissing as exc:
        raise RunFailed(str(exc)) from None
    except Exception as exc:
        if not is_database_error(exc):
            raise
        raise RunFailed(f"models: {reason_of(exc)}") from None
