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
instead, dlt's working folder beside where the DuckDB file would be.

What is retried: only what a retry can fix, soon. A database held by another run (its lock)
or another program (the DuckDB file) is waited for inside the task, trying again after
5, 10, 20, then every 30 s for up to 5 minutes (`airflow_retry`), then the task fails
naming the holder. Configuration errors (SettingsError) and a load in which some projects
failed (ProjectsFailed: the others are loaded, the failures are in project_runs) fail the
task at once (AirflowFailException); a run that failed (RunFailed: the load, the destination)
is retried by Airflow, twice, 3 minutes apart (RETRIES, RETRY_DELAY).

This file only defines the DAG, and imports the package absolutely, so that a copy of it in
the dags folder works as well as a one-line file importing it. The tasks' work, which runs
without Airflow and is what the tests call, is in `workspace_images.pipelines.airflow_tasks` (what each
task does) and `workspace_images.pipelines.airflow_context` (what it does it in). The heavy imports
(dlt, duckdb) happen inside the tasks, never when Airflow parses the file.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from workspace_images.pipelines.airflow_context import task_context, task_logging
from workspace_images.pipelines.airflow_tasks import FANOUT_ENV, FANOUTS, build_models, load_images, plan_loads

logger = logging.getLogger("workspace_images")

RETRIES, RETRY_DELAY = 2, timedelta(minutes=3)
"""Airflow's retries of `load_images` and `build_models`, left to a run that failed (RunFailed)."""

try:  # pragma: no cover - depends on the Airflow version
    from airflow.sdk import Param, dag as dag_decorator, get_current_context, task
except ImportError:  # pragma: no cover
    try:
        from airflow.decorators import dag as dag_decorator, task  # type: ignore[no-redef]  # Airflow 2's place
        from airflow.models.param import Param  # type: ignore[no-redef]  # Airflow 2's place
        from airflow.operators.python import get_current_context  # type: ignore[no-redef]  # Airflow 2's place
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
        default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY},
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
