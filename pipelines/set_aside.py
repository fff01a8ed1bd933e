"""Set aside a load package the database refuses for its content, and record its projects as failed.

A package that fails to load for what it holds (a load job dlt fails as terminal, or DuckDB
running out of its memory on it) fails the same way on every later try: left pending, it
would stop every later run. It is aborted the way dlt aborts a package (the local state and
schema go back to before it), moved to `<working folder>/set_aside/<load_id>/` with a
`reason.txt`, and the projects of its run are recorded in `project_runs` as failed with
`WI.LOAD_REFUSED` (from the rows the package carries in its state, `PACKAGE_RUNS_KEY`), in a
package of their own. The history stays as it was. Failures a retry can fix (a held file, a
lost connection) are not content failures: such a package stays pending and is loaded first
by the next run.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Dict, List

import dlt
import duckdb
from dlt.load.exceptions import LoadClientJobException, LoadClientJobFailed, LoadClientJobTerminalRetry

from workspace_images.runs import PROJECT_RUNS_COLUMNS, PROJECT_RUNS_KEY, PROJECT_RUNS_WRITE_DISPOSITION
from workspace_images.failures import MAX_ERROR_MSG
from workspace_images.safe_text import safe_text
from workspace_images.settings import ERR_LOAD_REFUSED, PACKAGE_RUNS_KEY

from .locking import causes

logger = logging.getLogger("workspace_images")

SET_ASIDE_DIR = "set_aside"
"""Folder of the working folder (`--pipelines-dir`) that keeps refused packages."""
REASON_FILE = "reason.txt"


def refused_for_content(exc: BaseException) -> bool:
    """Whether a failed load failed for what its package holds, so that no retry can load it: a
    load job that dlt failed as terminal (the database refused its rows), or DuckDB out of memory
    on a job (its memory cap is fixed, and so is the package). Failures outside the jobs (the
    database unreachable, credentials refused) are not the package's: it stays pending."""
    for cause in causes(exc, limit=20):
        if isinstance(cause, duckdb.OutOfMemoryException):
            return True
        if not isinstance(cause, LoadClientJobException):
            continue
        if isinstance(cause, (LoadClientJobFailed, LoadClientJobTerminalRetry)):
            return True
        inner = getattr(cause, "client_exception", None)
        if isinstance(inner, BaseException) and any(
            isinstance(c, duckdb.OutOfMemoryException) for c in causes(inner)
        ):
            return True
    return False


def set_aside(
    pipeline: dlt.Pipeline, load_id: str, reason: str, in_database: Callable[[Callable[[], Any]], Any]
) -> List[Dict[str, Any]]:
    """Abort package `load_id` (and, as dlt does, the packages newer than it), keep each aborted
    or deleted package's run log, move the aborted package to `set_aside/`, and record the
    projects of every such run as failed. `in_database(step)` runs a dlt step that reaches the
    database (the runner's `in_file` with its waits). Returns the `project_runs` rows recorded."""
    plan = pipeline.abort_packages(load_id, dry_run=True)
    newer = list(plan["packages_to_delete"]) if plan else []
    runs = {lid: _package_rows(pipeline, lid) for lid in [load_id, *newer]}
    in_database(lambda: pipeline.abort_packages(load_id))
    folder = Path(pipeline.pipelines_dir) / SET_ASIDE_DIR / load_id
    folder.parent.mkdir(parents=True, exist_ok=True)
    package = Path(pipeline.get_load_package_info(load_id).package_path)
    if folder.exists():
        shutil.rmtree(folder)
    shutil.move(str(package), str(folder))
    note = safe_text(reason)
    (folder / REASON_FILE).write_text(
        f"load package {load_id} was refused by the database for its content and set aside:\n{note}\n"
        + (f"newer packages dropped with it (they built on it): {', '.join(newer)}\n" if newer else ""),
        encoding="utf-8",
    )
    recorded = [
        _refused(row, note, load_id, folder if lid == load_id else None) for lid, rows in runs.items() for row in rows
    ]
    if recorded:
        record_runs(pipeline, recorded, in_database)
    logger.warning(
        "load package %s was refused by the database for its content (%s); set aside in %s%s; "
        "its %d project(s) recorded as failed with %s",
        load_id, note, folder, f", {len(newer)} newer package(s) dropped with it" if newer else "",
        len(recorded), ERR_LOAD_REFUSED,
    )
    return recorded


def record_runs(pipeline: dlt.Pipeline, rows: List[Dict[str, Any]], in_database: Callable[[Callable[[], Any]], Any]) -> None:
    """Load `project_runs` rows in a package of their own, merged on (run_id, project_id) as the
    source's resource writes them."""
    resource = dlt.resource(
        rows,
        name="project_runs",
        write_disposition=PROJECT_RUNS_WRITE_DISPOSITION,
        primary_key=PROJECT_RUNS_KEY,
        columns=PROJECT_RUNS_COLUMNS,
    )
    pipeline.extract(resource)
    pipeline.normalize()
    in_database(pipeline.load)


def _package_rows(pipeline: dlt.Pipeline, load_id: str) -> List[Dict[str, Any]]:
    """The `project_runs` rows a package carries in its state (none for a package of another kind)."""
    try:
        state = pipeline.get_load_package_state(load_id)
    except Exception:  # a package with no state of its own: nothing to record
        logger.debug("no state in load package %s", load_id, exc_info=True)
        return []
    rows = state.get(PACKAGE_RUNS_KEY)
    if not isinstance(rows, list):  # none carried: a package of another kind
        return []
    return [dict(row) for row in rows if isinstance(row, dict)]


def _refused(row: Dict[str, Any], reason: str, load_id: str, folder: Path | None) -> Dict[str, Any]:
    """A run log row of a refused package: a project that was ok becomes failed with
    `WI.LOAD_REFUSED`; a project that had failed keeps its own failure."""
    out = {k: _time(k, v) for k, v in row.items() if k in PROJECT_RUNS_COLUMNS}
    if out.get("status") != "ok":
        return out
    where = f"set aside in {folder}" if folder else f"dropped with package {load_id}, which was set aside"
    message = f"the database refused this run's data, so the project's images are as they were; {where}: {reason}"
    if len(message) > MAX_ERROR_MSG:
        message = message[: MAX_ERROR_MSG - 1] + "…"
    out.update(status="failed", images=0, http_status=None, error_code=ERR_LOAD_REFUSED, error_msg=message)
    return out


def _time(name: str, value: Any) -> Any:
    if value is not None and PROJECT_RUNS_COLUMNS[name].get("data_type") == "timestamp":
        return datetime.fromisoformat(value) if isinstance(value, str) else value
    return value
