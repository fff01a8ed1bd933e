"""Airflow DAG: load every configured project once a day, then rebuild the models.

Copy this file into Airflow's `dags/` folder on a worker where workspace-images is
installed, and set the settings as for `workspace-images run` (environment variables
`SOURCES__WORKSPACE_IMAGES__...`, or `.dlt/` in the worker's working folder), plus
`WORKSPACE_IMAGES_DB` for the DuckDB file. Each run loads as of the end of its data
interval, so backfills land at the right validity timestamps; runs go one at a time
because an SCD2 history must be loaded in time order.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from workspace_images.runner import run

DB_ENV = "WORKSPACE_IMAGES_DB"
DEFAULT_DB = "/var/lib/workspace-images/workspace_images.duckdb"


class ProjectsFailed(Exception):
    """Some projects failed; the others are loaded and the failures are in project_runs."""


def load_images(data_interval_end: datetime, db_path: str | None = None, **_: Any) -> str:
    """The DAG's task: one `workspace-images run` as of the end of the data interval.

    Args:
        data_interval_end: Airflow's end of the interval this run covers.
        db_path: The DuckDB file; `$WORKSPACE_IMAGES_DB` or DEFAULT_DB when None.

    Returns:
        The run's summary line (Airflow keeps it as the task's XCom).

    Raises:
        ProjectsFailed: some projects failed (exit code 1 of the CLI), so the task is marked
            failed and retried; what loaded stays loaded.
    """
    db = Path(db_path or os.environ.get(DB_ENV, DEFAULT_DB))
    # an interval that has not ended yet (a manual run) is loaded as of now: never in the future
    as_of = min(data_interval_end.astimezone(timezone.utc), datetime.now(timezone.utc))
    result = run(db, as_of=as_of)
    if result.failed:
        names = ", ".join(f"{p['region']}:{p['project_id']} ({p['error_code']})" for p in result.failed)
        raise ProjectsFailed(f"{len(result.failed)} project(s) failed: {names}; {result.summary()}")
    return result.summary()


try:  # the DAG itself exists only where Airflow is installed
    from airflow import DAG
    from airflow.operators.python import PythonOperator
except ImportError:  # pragma: no cover - imported outside Airflow (tests, the CLI)
    DAG = None

if DAG is not None:  # pragma: no cover - needs Airflow
    with DAG(
        dag_id="workspace_images",
        description="Huawei Cloud Workspace product images: load, SCD2 history, models",
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
        tags=["workspace-images"],
    ) as dag:
        PythonOperator(task_id="load_images", python_callable=load_images)
