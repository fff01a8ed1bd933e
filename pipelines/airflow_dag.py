"""Airflow DAG `workspace_images`: load the configured projects once a day, then rebuild the models.

Tasks, in order:

- `plan_loads`: what to load, as of when. Without a fan-out one load of everything; with
  `fanout` = `region` one load per region, with `account` one per account (the DAG
  param `fanout`, else `$WORKSPACE_IMAGES_FANOUT` on the worker).
- `load_images`: one mapped task per load, each a `workspace-images run --no-models`,
  one at a time (`max_active_tis_per_dag=1`: a DuckDB file takes one writer, and the loads
  of a shared warehouse share dlt's state and working folder).
- `build_models`: the SQL models, once every load has finished, also when some failed.
- `summary`: the loads' summary lines; it does not run when a load failed, so the DAG
  run is marked failed.

Settings come from `.dlt/` beside the DAG file (as dlt's own Airflow helper reads them
from the dags folder), whatever the worker's working folder, and from environment
variables; `$WORKSPACE_IMAGES_DB` names the DuckDB file. With `destination` set in
`[sources.workspace_images]` (e.g. `postgres`, credentials the dlt way), the loads go there
instead, dlt's working folder beside where the DuckDB file would be. Configuration errors fail a task
at once (AirflowFailException, no retry); anything else fails it to be retried.

Everything above the DAG's definition, at the end, works without Airflow: the tests call it.
The heavy imports (dlt, duckdb) happen inside the tasks, never when Airflow parses the file.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

DB_ENV = "WORKSPACE_IMAGES_DB"
DEFAULT_DB = "/var/lib/workspace-images/workspace_images.duckdb"
FANOUT_ENV = "WORKSPACE_IMAGES_FANOUT"
FANOUTS = ("none", "region", "account")
PROJECT_DIR_ENV = "DLT_PROJECT_DIR"
"""dlt reads `.dlt/` in this folder instead of the working folder (dlt's `known_env.DLT_PROJECT_DIR`)."""

logger = logging.getLogger("workspace_images")

try:  # Airflow 3 (the Task SDK), then Airflow 2; a stand-in where Airflow is not installed
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # pragma: no cover - depends on the Airflow version
    try:
        from airflow.exceptions import AirflowFailException  # type: ignore[no-redef,assignment]
    except ImportError:

        class AirflowFailException(Exception):  # type: ignore[no-redef]
            """Stand-in for Airflow's exception when Airflow is not installed (tests, the CLI)."""


class SettingsError(AirflowFailException):
    """A setting is missing or wrong (the CLI's exit 2): Airflow fails the task without retrying,
    since a retry would meet the same settings. Nothing was written."""


class ProjectsFailed(Exception):
    """Some projects failed; the others are loaded and the failures are in project_runs."""


# -- settings, logging, errors: what every task sets up around its work


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


def _reload_dlt_providers() -> None:
    """Make dlt read its settings again, as dlt's Airflow helper does after moving DLT_PROJECT_DIR."""
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
            _reload_dlt_providers()  # raises when a settings file there cannot be read
            yield folder / ".dlt"
    finally:
        try:
            _reload_dlt_providers()  # back to the settings of the working folder
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

    from workspace_images.errors import UsageError
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
    from workspace_images.checks import resolve_target
    from workspace_images.errors import UsageError

    name = _setting("destination")
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
    """The DuckDB file: `db_path`, else $WORKSPACE_IMAGES_DB, else DEFAULT_DB."""
    return Path(db_path or os.environ.get(DB_ENV) or DEFAULT_DB)


def as_of_for(data_interval_end: Optional[datetime], now: Optional[datetime] = None) -> datetime:
    """The validity timestamp of a DAG run's loads: the end of its data interval, never in the future.

    An interval that has not ended yet (a manual run) or a run without one (Airflow 3's
    manual runs without a logical date) is loaded as of now.
    """
    now = now or datetime.now(timezone.utc)
    if data_interval_end is None:
        return now
    if data_interval_end.tzinfo is None:
        data_interval_end = data_interval_end.replace(tzinfo=timezone.utc)
    return min(data_interval_end.astimezone(timezone.utc), now)


# -- the work of each task, callable without Airflow


def plan_loads(fanout: Optional[str], data_interval_end: Optional[datetime] = None) -> List[Dict[str, Any]]:
    """The loads of one DAG run: one of everything, or one per region or per account.

    Each load is a dict of strings (it travels as an XCom, so it never holds a setting's
    value, let alone a secret): `label`, `as_of` (ISO), and `region` or `account`.
    Call it where dlt reads the settings (inside `task_context`).

    Raises:
        SettingsError: an unknown fan-out, or settings that name no region or account.
    """
    kind = (fanout or os.environ.get(FANOUT_ENV) or "none").strip().lower()
    as_of = as_of_for(data_interval_end).isoformat()
    if kind not in FANOUTS:
        raise SettingsError(f"fanout {kind!r} is not one of {', '.join(FANOUTS)} (${FANOUT_ENV} or the DAG param)")
    if kind == "none":
        return [{"label": "all", "as_of": as_of}]
    with settings_errors_fail_at_once():
        if kind == "region":
            return [{"label": r, "as_of": as_of, "region": r} for r in configured_regions()]
        return [{"label": a, "as_of": as_of, "account": a} for a in configured_accounts()]


def _setting(name: str) -> Any:
    """A setting of `[sources.workspace_images]` as dlt resolves it (environment, secrets, config)."""
    import dlt

    return dlt.config.get(f"sources.workspace_images.{name}")


def configured_regions() -> List[str]:
    """The regions to load, one task each: `regions` when set, else those of `projects`.

    Raises:
        SettingsError: more accounts are set (their own projects and regions would not
            split by the default account's regions: fan out by account), or neither
            `regions` nor `projects` names a region (discovery alone cannot be split
            before it runs).
    """
    from workspace_images.source.config import parse_projects, parse_regions

    if _account_settings():
        raise SettingsError(
            "fanout region splits the default account's projects, and more accounts are set "
            "(sources.workspace_images.accounts): use fanout account"
        )
    regions = parse_regions(_setting("regions"))
    if not regions:
        regions = [p.region for p in parse_projects(_setting("projects"))]
    if not regions:
        raise SettingsError(
            "fanout region needs the regions to load: set sources.workspace_images.regions "
            "(SOURCES__WORKSPACE_IMAGES__REGIONS) or projects"
        )
    return sorted(set(regions))


def configured_accounts() -> List[str]:
    """The accounts to load, one task each: `default` when it has projects (or discovers them,
    or is the only account), then every name under `accounts`."""
    from workspace_images.source.config import parse_projects

    accounts = _account_settings()
    names = sorted(str(name) for name in accounts)
    if not accounts or parse_projects(_setting("projects")) or _truthy(_setting("discover_projects")):
        names.insert(0, "default")
    return names


def _account_settings() -> Dict[str, Any]:
    """The `accounts` table as the source resolves it (a JSON object in an environment variable)."""
    import json

    value = _setting("accounts")
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise SettingsError(f"accounts is not a JSON object: {exc.msg}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SettingsError("accounts must be a table of account names, e.g. [sources.workspace_images.accounts.prod]")
    return value


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on") if isinstance(value, str) else bool(value)


def load_images(
    data_interval_end: Optional[datetime],
    db_path: Optional[str | Path] = None,
    *,
    region: Optional[str] = None,
    account: Optional[str] = None,
    models: bool = True,
    dag_folder: Optional[Path] = None,
    **_: Any,
) -> str:
    """One `workspace-images run` as of the end of the data interval, logging its progress.

    Args:
        data_interval_end: Airflow's end of the interval this run covers (None: now).
        db_path: The DuckDB file; $WORKSPACE_IMAGES_DB or DEFAULT_DB when None.
        region: Load only the projects in this region (the region fan-out).
        account: Load only this account (`default` or a name under `accounts`).
        models: Rebuild the SQL models after the load (the DAG builds them in a task of their own).
        dag_folder: Read dlt's settings from `.dlt/` in this folder (see `dlt_settings`).

    Returns:
        The run's summary line (Airflow keeps it as the task's XCom).

    Raises:
        SettingsError: a setting is missing or wrong; nothing was written (no retry).
        ProjectsFailed: some projects failed; what loaded stays loaded (retried).
        LockHeld: another run holds the database's lock; nothing was done (retried).
        RunFailed, DatabaseBusy: the run itself failed (retried).
    """
    from workspace_images.cli import progress_printer
    from workspace_images.runner import failure_of, run

    as_of = as_of_for(data_interval_end)
    with task_context(dag_folder), ExitStack() as stack:
        where = target(db_path)
        kwargs: Dict[str, Any] = {}
        if region is not None:
            kwargs["regions"] = [region]
        if account is not None:
            kwargs.update(_one_account(account, stack))
        what = f"region {region}" if region else f"account {account}" if account else "every project"
        logger.info("loading %s into %s as of %s", what, where.label, f"{as_of:%Y-%m-%d %H:%M:%S}Z")
        result = run(where.db_path, destination=where.destination, as_of=as_of, models=models,
                     pipelines_dir=pipelines_dir(where, db_path), on_progress=progress_printer(), **kwargs)
        for project in result.failed:
            logger.warning("failed: %s:%s: %s", project["region"], project["project_id"], failure_of(project))
        logger.info("%s", result.summary())
        if result.models is not None:
            logger.info("%s", result.models.summary())
    if result.failed:
        names = ", ".join(f"{p['region']}:{p['project_id']} ({p['error_code']})" for p in result.failed)
        raise ProjectsFailed(f"{len(result.failed)} project(s) failed: {names}; {result.summary()}")
    return result.summary()


def _one_account(name: str, stack: ExitStack) -> Dict[str, Any]:
    """The runner's arguments that load account `name` alone.

    The default account alone: no further accounts. Another account alone: its own table
    of `accounts` (read at run time, never carried in an XCom), and the default account's
    projects and discovery switched off for this run.
    """
    accounts = _account_settings()
    if name == "default":
        return {"accounts": {}}
    if name not in accounts:
        raise SettingsError(f"account {name} is not under sources.workspace_images.accounts any more")
    stack.enter_context(environ(SOURCES__WORKSPACE_IMAGES__PROJECTS="[]"))
    return {"accounts": {name: accounts[name]}, "discover": False}


def build_models(db_path: Optional[str | Path] = None, dag_folder: Optional[Path] = None) -> str:
    """Rebuild the SQL models where the loads went, under the run lock like `workspace-images models`.

    Returns:
        The build's summary line, or why nothing was built (no database yet: every load failed).

    Raises:
        SettingsError: no models can be built from this database (no retry).
        LockHeld: a run holds the database's lock (retried).
        RunFailed, DatabaseBusy: a data test failed or the file stayed busy (retried).
    """
    from workspace_images.runner import run_models
    from workspace_images.warehouse import hold

    with task_context(dag_folder):
        where = target(db_path)
        if where.is_file and not where.db_path.exists():
            logger.warning("%s does not exist: nothing was loaded, so no models to build", where.db_path)
            return f"no models: {where.db_path} does not exist"
        workdir = pipelines_dir(where, db_path)
        with hold(where, workdir, "models build"):
            result = run_models(where, pipelines_dir=workdir)
        logger.info("%s", result.summary())
        return result.summary()


# -- the DAG, where Airflow is installed

try:  # pragma: no cover - depends on the Airflow version
    from airflow.sdk import Param, dag as dag_decorator, get_current_context, task
except ImportError:  # pragma: no cover
    try:
        from airflow.decorators import dag as dag_decorator, task  # type: ignore[no-redef]
        from airflow.models.param import Param  # type: ignore[no-redef]
        from airflow.operators.python import get_current_context  # type: ignore[no-redef]
    except ImportError:  # imported outside Airflow (tests, the CLI)
        dag_decorator = None


def _dag_folder(context: Dict[str, Any]) -> Optional[Path]:
    """The folder of the DAG file Airflow loaded (the copy in dags/, or the one-line module
    importing this one), where `.dlt/` is looked for."""
    dag_obj = context.get("dag")
    fileloc = getattr(dag_obj, "fileloc", None)
    return Path(fileloc).resolve().parent if fileloc else None


dag = None
if dag_decorator is not None:  # pragma: no cover - needs Airflow; played by tests/integration

    @dag_decorator(
        dag_id="workspace_images",
        description="Huawei Cloud Workspace product images: load, SCD2 history, models",
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,  # an SCD2 history is loaded in time order, one run at a time
        default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
        params={
            "fanout": Param(
                "",
                type="string",
                enum=["", *FANOUTS],
                description=f"one load task per region or per account; empty: ${FANOUT_ENV}, else none",
            )
        },
        tags=["workspace-images"],
        doc_md=__doc__,
    )
    def workspace_images_dag() -> None:
        @task(task_id="plan_loads", retries=0)
        def plan(**context: Any) -> List[Dict[str, Any]]:
            with task_context(_dag_folder(context)):
                loads = plan_loads(context["params"].get("fanout"), context.get("data_interval_end"))
                logger.info("%d load(s): %s", len(loads), ", ".join(p["label"] for p in loads))
                return loads

        @task(task_id="load_images", max_active_tis_per_dag=1, map_index_template="{{ load_label }}")
        def load(part: Dict[str, Any], **context: Any) -> str:
            get_current_context()["load_label"] = part["label"]
            return load_images(
                datetime.fromisoformat(part["as_of"]),
                region=part.get("region"),
                account=part.get("account"),
                models=False,
                dag_folder=_dag_folder(context),
            )

        @task(task_id="build_models", trigger_rule="all_done")
        def models(**context: Any) -> str:
            return build_models(dag_folder=_dag_folder(context))

        @task(task_id="summary", retries=0)
        def summary(lines: List[str]) -> str:
            # by index: iterating Airflow 3's lazy XCom sequence logs an error past its end
            lines = [lines[i] for i in range(len(lines))]
            with task_logging():
                for line in lines:
                    logger.info("%s", line)
            return f"{len(lines)} load(s) ok"

        loaded = load.expand(part=plan())
        built = models()
        loaded >> built
        built >> summary(loaded)

    dag = workspace_images_dag()
