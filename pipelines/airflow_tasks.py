"""The work of each DAG task, without Airflow: plan a DAG run's loads, load, build the models.

A DAG run's loads are one of everything, or one per region or per account (the fan-out);
each is a `workspace-images run` as of the end of the data interval. A database held by
another run or program is waited for in the task (`airflow_retry`); a load in which some
projects failed raises ProjectsFailed and settings that are wrong raise SettingsError, which
Airflow does not retry. dlt and DuckDB are imported inside the functions, never when Airflow
parses the DAG file.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from workspace_images.pipelines.airflow_context import (
    AirflowFailException,
    SettingsError,
    environ,
    pipelines_dir,
    setting,
    settings_errors_fail_at_once,
    target,
    task_context,
)
from workspace_images.pipelines.airflow_retry import LOCK_WAIT, retry_while_held

FANOUT_ENV = "WORKSPACE_IMAGES_FANOUT"
FANOUTS = ("none", "region", "account")

logger = logging.getLogger("workspace_images")


class ProjectsFailed(AirflowFailException):
    """Some projects failed (the CLI's exit 1); the others are loaded and the failures are in
    project_runs. Airflow fails the task without retrying: a retry would fetch every project again."""


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


def configured_regions() -> List[str]:
    """The regions to load, one task each: `regions` when set, else those of `projects`.

    Raises:
        SettingsError: more accounts are set (their own projects and regions would not
            split by the default account's regions: fan out by account), or neither
            `regions` nor `projects` names a region (discovery alone cannot be split
            before it runs).
    """
    from workspace_images.config import env_name, parse_projects, parse_regions
    from workspace_images.settings import SOURCE_SECTION

    if _account_settings():
        raise SettingsError(
            "fanout region splits the default account's projects, and more accounts are set "
            f"({SOURCE_SECTION}.accounts): use fanout account"
        )
    regions = parse_regions(setting("regions"))
    if not regions:
        regions = [p.region for p in parse_projects(setting("projects"))]
    if not regions:
        raise SettingsError(
            f"fanout region needs the regions to load: set {SOURCE_SECTION}.regions "
            f"({env_name(SOURCE_SECTION + '.regions')}) or projects"
        )
    return sorted(set(regions))


def configured_accounts() -> List[str]:
    """The accounts to load, one task each: `default` when it has projects (or discovers them,
    or is the only account), then every name under `accounts`."""
    from workspace_images.config import parse_projects
    from workspace_images.settings import DEFAULT_ACCOUNT

    accounts = _account_settings()
    names = sorted(str(name) for name in accounts)
    if not accounts or parse_projects(setting("projects")) or _truthy(setting("discover_projects")):
        names.insert(0, DEFAULT_ACCOUNT)
    return names


def _account_settings() -> Dict[str, Any]:
    """The `accounts` table as the source reads it (`accounts.accounts_table`)."""
    from workspace_images.accounts import accounts_table
    from workspace_images.config import ConfigError

    try:
        return accounts_table(setting("accounts"))
    except ConfigError as exc:
        raise SettingsError(str(exc)) from None


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
    lock_wait: float = LOCK_WAIT,
) -> str:
    """One `workspace-images run` as of the end of the data interval, logging its progress.

    Args:
        data_interval_end: Airflow's end of the interval this run covers (None: now).
        db_path: The DuckDB file; $WORKSPACE_IMAGES_DB or airflow_context.DAG_DEFAULT_DB when None.
        region: Load only the projects in this region (the region fan-out).
        account: Load only this account (`default` or a name under `accounts`).
        models: Rebuild the SQL models after the load (the DAG builds them in a task of their own).
        dag_folder: Read dlt's settings from `.dlt/` in this folder (see `dlt_settings`).
        lock_wait: Seconds to keep trying while another run holds the database's lock or
            another program the DuckDB file (see `retry_while_held`).

    Returns:
        The run's summary line (Airflow keeps it as the task's XCom).

    Raises:
        SettingsError: a setting is missing or wrong; nothing was written (no retry).
        ProjectsFailed: some projects failed; what loaded stays loaded (no retry).
        StillHeld: the database stayed held for `lock_wait` seconds (no retry).
        RunFailed, Unreachable: the run itself failed, or the destination is down (retried by Airflow).
    """
    from workspace_images.pipelines.output import progress_printer
    from workspace_images.pipelines.runner import failed_line, run

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
        workdir = pipelines_dir(where, db_path)
        result = retry_while_held(lambda: run(where.db_path, destination=where.destination, as_of=as_of,
                                              models=models, pipelines_dir=workdir,
                                              on_progress=progress_printer(), **kwargs), lock_wait)
        for project in result.failed:
            logger.warning("%s", failed_line(project))
        logger.info("%s", result.summary())
        if result.models is not None:
            logger.info("%s", result.models.summary())
    if result.failed:
        names = ", ".join(f"{p['region']}:{p['project_id']} ({p['error_code']})" for p in result.failed)
        raise ProjectsFailed(f"{len(result.failed)} project(s) failed: {names}; {result.summary()} "
                             "(in project_runs; the other projects are loaded; not retried: a retry "
                             "would fetch every project again)")
    return result.summary()


def _one_account(name: str, stack: ExitStack) -> Dict[str, Any]:
    """The runner's arguments that load account `name` alone.

    The default account alone: no further accounts. Another account alone: its own table
    of `accounts` (read at run time, never carried in an XCom), and the default account's
    projects and discovery switched off for this run.
    """
    from workspace_images.config import env_name
    from workspace_images.settings import DEFAULT_ACCOUNT, SOURCE_SECTION

    accounts = _account_settings()
    if name == DEFAULT_ACCOUNT:
        return {"accounts": {}}
    if name not in accounts:
        raise SettingsError(f"account {name} is not under {SOURCE_SECTION}.accounts any more")
    stack.enter_context(environ(**{env_name(SOURCE_SECTION + ".projects"): "[]"}))
    return {"accounts": {name: accounts[name]}, "discover": False}


def build_models(db_path: Optional[str | Path] = None, dag_folder: Optional[Path] = None,
                 lock_wait: float = LOCK_WAIT) -> str:
    """Rebuild the SQL models where the loads went, under the run lock like `workspace-images models`;
    while the database is held, keep trying for `lock_wait` seconds (see `retry_while_held`).

    Returns:
        The build's summary line, or why nothing was built (no database yet: every load failed).

    Raises:
        SettingsError: no models can be built from this database (no retry).
        StillHeld: the database stayed held for `lock_wait` seconds (no retry).
        RunFailed: a data test failed, or the destination did (retried by Airflow).
    """
    from workspace_images.pipelines.runner import run_models
    from workspace_images.pipelines.warehouse import hold

    with task_context(dag_folder):
        where = target(db_path)
        if where.file_missing:
            logger.warning("%s does not exist: nothing was loaded, so no models to build", where.db_path)
            return f"no models: {where.db_path} does not exist"
        # None for a DuckDB file: the working folder beside it, as run() has it
        workdir = pipelines_dir(where, db_path) or where.default_pipelines_dir()

        def build() -> Any:
            with hold(where, workdir, "models build"):
                return run_models(where, pipelines_dir=workdir)

        result = retry_while_held(build, lock_wait)
        logger.info("%s", result.summary())
        return result.summary()
