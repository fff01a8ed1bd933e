"""What every DAG task works in: dlt's settings beside the DAG file, the task log, where loads go.

Settings come from `.dlt/` beside the DAG file (as dlt's own Airflow helper reads them
from the dags folder), whatever the worker's working folder, and from environment
variables; `$WORKSPACE_IMAGES_DB` names the DuckDB file. With `destination` set in
`[sources.workspace_images]` (e.g. `postgres`, credentials the dlt way), the loads go there
instead, dlt's working folder beside where the DuckDB file would be. Configuration errors
fail a task at once (SettingsError, an AirflowFailException: no retry).

Nothing here needs Airflow (its exception has a stand-in where it is not installed), and
dlt is imported inside the functions, never when Airflow parses the DAG file.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

DB_ENV = "WORKSPACE_IMAGES_DB"
DAG_DEFAULT_DB = "/var/lib/workspace-images/images.duckdb"
PROJECT_DIR_ENV = "DLT_PROJECT_DIR"
"""dlt reads `.dlt/` in this folder instead of the working folder (dlt's `known_env.DLT_PROJECT_DIR`)."""

logger = logging.getLogger("workspace_images")

try:  # Airflow 3 (the Task SDK), then Airflow 2; a stand-in where Airflow is not installed
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # pragma: no cover - depends on the Airflow version
    try:
        from airflow.exceptions import AirflowFailException  # type: ignore[no-redef,assignment]  # Airflow 2's place
    except ImportError:

        class AirflowFailException(Exception):  # type: ignore[no-redef]  # no Airflow: a stand-in of the same name
            """Stand-in for Airflow's exception when Airflow is not installed (tests, the CLI)."""


class SettingsError(AirflowFailException):
    """A setting is missing or wrong (the CLI's exit 2): Airflow fails the task without retrying,
    since a retry would meet the same settings. Nothing was written."""


@contextmanager
def environ(**values: Optional[str]) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block, then put them back."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        _put_environ(values)
        yield
    finally:
        _put_environ(saved)


def _put_environ(values: Dict[str, Optional[str]]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def reload_dlt_providers() -> None:
    """Make dlt read its settings again, as dlt's Airflow helper does after moving DLT_PROJECT_DIR: from
    $DLT_PROJECT_DIR/.dlt/ when set, else from the working folder's. `dlt_settings` calls it on the way in and
    out; whoever moves the working folder under dlt (a test) calls it to have dlt read the new folder's."""
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    if PluggableRunContext in Container():
        Container()[PluggableRunContext].reload_providers()


@contextmanager
def dlt_settings(dag_folder: Optional[Path]) -> Iterator[Optional[Path]]:
    """Read dlt's settings from `<dag_folder>/.dlt/` for the block, whatever the working folder.

    Like `dlt.helpers.airflow_helper.PipelineTasksGroup`, which points DLT_PROJECT_DIR at
    Airflow's dags folder and reloads dlt's config providers; here the folder is the DAG
    file's own. An explicit $DLT_PROJECT_DIR wins; without `.dlt/` beside the DAG file
    dlt keeps its default (`.dlt/` in the working folder). Yields the settings folder used.
    """
    if os.environ.get(PROJECT_DIR_ENV):
        yield Path(os.environ[PROJECT_DIR_ENV]) / ".dlt"
        return
    if dag_folder is None or not (dag_folder / ".dlt").is_dir():
        yield None
        return
    folder = dag_folder.resolve()
    try:
        with environ(**{PROJECT_DIR_ENV: str(folder)}):
            reload_dlt_providers()  # raises when a settings file there cannot be read
            yield folder / ".dlt"
    finally:
        try:
            reload_dlt_providers()  # back to the settings of the working folder
        except Exception as exc:  # never hide the task's own outcome behind the working folder's files
            logger.warning("dlt cannot read the settings of the working folder again: %s", exc)


@contextmanager
def task_logging() -> Iterator[None]:
    """Send the `workspace_images` log (progress lines, warnings, the summary) to Airflow's task log.

    Airflow's task log takes what reaches the root logger: the block makes the logger log
    INFO and pass its records up, and keeps dlt's own logger quiet unless
    RUNTIME__LOG_LEVEL says otherwise, as the CLI does (every failure is said in one line).
    """
    log = logging.getLogger("workspace_images")
    saved = (log.level, log.propagate, list(log.handlers))
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    log.propagate = True
    log.handlers[:] = []  # the CLI's handlers, if it ever ran in this process, would bypass the task log
    try:
        with environ(
            RUNTIME__LOG_LEVEL=os.environ.get("RUNTIME__LOG_LEVEL", "CRITICAL"),
            RUNTIME__DLTHUB_TELEMETRY=os.environ.get("RUNTIME__DLTHUB_TELEMETRY", "false"),
        ):
            yield
    finally:
        log.setLevel(saved[0])
        log.propagate = saved[1]
        log.handlers[:] = saved[2]


@contextmanager
def settings_errors_fail_at_once() -> Iterator[None]:
    """Turn the runner's UsageError (exit 2), the source's ConfigError and dlt's configuration
    errors (a settings file it cannot read, a value it cannot resolve) into SettingsError."""
    from dlt.common.configuration.exceptions import ConfigurationException

    from workspace_images.pipelines.errors import UsageError
    from workspace_images.source import ConfigError

    try:
        yield
    except (UsageError, ConfigError, ConfigurationException) as exc:
        reason = " ".join(str(exc).split())
        raise SettingsError(f"configuration: {reason} (not retried: fix the setting, then clear the task)") from None


@contextmanager
def task_context(dag_folder: Optional[Path]) -> Iterator[None]:
    """Logging, dlt's settings folder and error translation around one task's work."""
    with ExitStack() as stack:
        stack.enter_context(task_logging())
        stack.enter_context(settings_errors_fail_at_once())
        folder = stack.enter_context(dlt_settings(dag_folder))
        logger.info("settings: %s, environment variables; database: %s",
                    folder or "dlt's default (.dlt/ in the working folder)", target().label)
        yield


def target(db_path: Optional[str | Path] = None) -> Any:
    """Where the loads go (a runner `Target`): `destination` of `[sources.workspace_images]` when
    it is set and not duckdb, else the DuckDB file `database(db_path)`. Call it where dlt reads
    the settings (inside `task_context`).

    Raises:
        SettingsError: an unknown destination, or one whose credentials are missing.
    """
    from workspace_images.pipelines.checks import resolve_target
    from workspace_images.pipelines.errors import UsageError

    name = setting("destination")
    try:
        if name and str(name).strip() != "duckdb":
            return resolve_target(None, str(name))
        return resolve_target(database(db_path), "duckdb")
    except UsageError as exc:
        raise SettingsError(str(exc)) from None


def pipelines_dir(where: Any, db_path: Optional[str | Path] = None) -> Optional[Path]:
    """dlt's working folder for a warehouse: beside where the DuckDB file would be (the one
    folder the workers must be able to write); None for a DuckDB file (beside it)."""
    if where.is_file:
        return None
    folder = database(db_path).parent / ".workspace_images"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{where.destination}-{where.dataset}"


def database(db_path: Optional[str | Path] = None) -> Path:
    """The DuckDB file: `db_path`, else $WORKSPACE_IMAGES_DB, else DAG_DEFAULT_DB."""
    return Path(db_path or os.environ.get(DB_ENV) or DAG_DEFAULT_DB)


def setting(name: str) -> Any:
    """A setting of `[sources.workspace_images]` as dlt resolves it (environment, secrets, config)."""
    import dlt

    from workspace_images.settings import SOURCE_SECTION

    return dlt.config.get(f"{SOURCE_SECTION}.{name}")
