"""What earlier runs left in the database, read before a run: the history's counts and its run log.

`drop_unfinished_run_log` tidies the run log of loads dlt never finished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

import dlt

from .errors import RunFailed, UsageError, first_line, is_database_error, reason_of
from .models import staging_select
from .warehouse import DATASET_NAME, Session, Target, connect, literal

logger = logging.getLogger("workspace_images")


def finished_runs(session: Session) -> str:
    """The run log of the loads dlt finished, as a relation: `stg_project_runs`' own select (the
    one home of the rule), read from the raw tables, since the models may not be built yet."""
    return f"({staging_select('stg_project_runs', session.dialect, DATASET_NAME)}) as finished"


def unfinished_runs(finished: str) -> str:
    """`from ... where ...` of the `project_runs` rows of load packages dlt never finished, given
    `finished_runs`' relation (rendered once by the caller)."""
    return (f"from {DATASET_NAME}.project_runs where _dlt_load_id not in "
            f"(select _dlt_load_id from {finished})")


def drop_unfinished_run_log(target: Target, pipeline: Optional[dlt.Pipeline] = None) -> int:
    """Delete `project_runs` rows of load packages dlt never finished (aborted by hand).

    Called when no package is pending and `read_history` found such rows: they belong to
    no load that will ever complete, and would vouch for images that never landed.
    Returns how many went.
    """
    try:
        with connect(target, pipeline=pipeline) as session:
            unfinished = unfinished_runs(finished_runs(session))
            gone = session.value(f"select count(*) {unfinished}")
            session.execute(f"delete {unfinished}")
    except Exception as exc:
        if not is_database_error(exc):
            raise
        raise RunFailed(f"cannot tidy {target.label}: {first_line(exc)}") from None
    if gone:
        logger.warning("removed %d project_runs row(s) of load packages that never finished", gone)
    return gone


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
    if target.file_missing:
        return state
    try:
        with connect(target, read_only=True, pipeline=pipeline) as session:
            if session.table_exists(DATASET_NAME, "project_runs"):
                _check_foreign(session, target.label)
                # only rows of loads dlt finished: a pending or aborted package vouches for nothing
                runs = finished_runs(session)
                state.latest_as_of = session.value(f"select max(as_of) from {runs}")
                state.unfinished = session.value(f"select count(*) {unfinished_runs(runs)}")
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
        if not is_database_error(exc):
            raise
        raise RunFailed(f"cannot read {target.label}: {reason_of(exc)}") from None
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
