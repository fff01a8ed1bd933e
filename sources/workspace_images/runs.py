"""The `project_runs` table: its columns and write disposition, and the run log a load package carries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List

import dlt
from dlt.common.schema.typing import TDeleteInsertStrategyDict, TTableSchemaColumns

from .settings import PACKAGE_RUNS_KEY

PROJECT_RUNS_COLUMNS: TTableSchemaColumns = {
    "run_id": {"data_type": "text", "nullable": False},
    "account": {"data_type": "text"},
    "project_id": {"data_type": "text", "nullable": False},
    "project_name": {"data_type": "text"},
    "region": {"data_type": "text", "nullable": False},
    "discovered": {"data_type": "bool"},
    "as_of": {"data_type": "timestamp", "timezone": True, "nullable": False},
    "started_at": {"data_type": "timestamp", "timezone": True},
    "finished_at": {"data_type": "timestamp", "timezone": True},
    "status": {"data_type": "text", "nullable": False},
    "images": {"data_type": "bigint"},
    "total_count": {"data_type": "bigint"},
    "pages": {"data_type": "bigint"},
    "requests": {"data_type": "bigint"},
    "retries": {"data_type": "bigint"},
    "throttled": {"data_type": "bigint"},
    "http_status": {"data_type": "bigint"},
    "error_code": {"data_type": "text"},
    "error_msg": {"data_type": "text"},
}

PROJECT_RUNS_WRITE_DISPOSITION: TDeleteInsertStrategyDict = {"disposition": "merge", "strategy": "delete-insert"}
PROJECT_RUNS_KEY = ("run_id", "project_id")
"""Merged on (run_id, project_id), not appended: a load that is redone after a kill (its rows were
written, the package not yet marked done) must not log a run twice."""


def carry_run_log(rows: List[Dict[str, Any]]) -> None:
    """Put the `project_runs` rows of this run in the state of the load package being extracted:
    should the database refuse the package, the runner sets it aside and records these projects
    as failed from it (`pipelines/set_aside.py`)."""
    state = dlt.current.load_package_state()["state"]
    state[PACKAGE_RUNS_KEY] = [  # type: ignore[literal-required]  # dlt types it with its own keys only
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()} for row in rows
    ]
