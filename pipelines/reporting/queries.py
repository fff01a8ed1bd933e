"""What the report reads: the models of schema `analytics`, through a read-only DuckDB connection in UTC."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import duckdb


from ..locking import wait_for_database
from ..checks import lock_timeout_setting
from ..errors import RunFailed, UsageError
from ..warehouse import open_file


ANALYTICS = "analytics"
REQUIRED_MODELS = ("stg_project_runs", "project_status", "image_inventory", "inventory_summary", "os_version_trend",
                   "image_changes")
CHANGE_KINDS = ("added", "changed", "removed")


# -- reading the database ------------------------------------------------------------------


@contextmanager
def _connect(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection in UTC to a database whose models are built."""
    db_path = Path(db_path)
    if not db_path.exists():
        raise UsageError(f"{db_path} does not exist: load it first with `workspace-images run`")
    try:
        con = wait_for_database(
            lambda: open_file(db_path, read_only=True), db_path, lock_timeout_setting(None), "reading it"
        )
    except duckdb.Error as exc:
        raise RunFailed(f"cannot open {db_path}: {str(exc).strip().splitlines()[0]}") from None
    try:
        con.execute("set TimeZone = 'UTC'")
        built = {row[0] for row in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [ANALYTICS]
        ).fetchall()}
        missing = [name for name in REQUIRED_MODELS if name not in built]
        if missing:
            raise UsageError(
                f"{db_path} has no {ANALYTICS}.{missing[0]} model: run `workspace-images models --db {db_path}` first"
            )
        yield con
    finally:
        con.close()


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> List[Dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


@dataclass
class LatestRun:
    """The run with the latest `as_of`, and what it did per project."""

    run_id: str
    as_of: dt.datetime
    ok: int
    failed: List[Dict[str, Any]]


@dataclass
class Trend:
    """os_version_trend pivoted: one row per (os_type, os_version), one value per day."""

    days: List[dt.date]
    rows: List[Tuple[str, str, List[int]]]


@dataclass
class ReportData:
    """Everything the terminal report and the HTML page show."""

    latest: Optional[LatestRun]
    images: int
    stale_images: int
    projects: int
    regions: int
    stale_projects: int
    inventory: List[Dict[str, Any]] = field(default_factory=list)
    trend: Trend = field(default_factory=lambda: Trend([], []))


def _latest_run(con: duckdb.DuckDBPyConnection) -> Optional[LatestRun]:
    found = con.execute(
        "select run_id, as_of from analytics.stg_project_runs "
        "order by as_of desc, finished_at desc nulls last, run_id limit 1"
    ).fetchone()
    if found is None:
        return None
    run_id, as_of = found
    projects = _rows(
        con,
        "select region, project_id, status, http_status, error_code, error_msg "
        "from analytics.stg_project_runs where run_id = ? order by region, project_id",
        [run_id],
    )
    failed = [p for p in projects if p["status"] != "ok"]
    return LatestRun(run_id, as_of.astimezone(dt.timezone.utc), len(projects) - len(failed), failed)


def _latest_project_runs(con: duckdb.DuckDBPyConnection) -> List[Dict[str, Any]]:
    """Each project's latest run, with its last ok load and current image count (`project_status`)."""
    return _rows(
        con,
        """
        select region, project_id, latest_status as status, latest_as_of as as_of, http_status, error_code,
            error_msg, last_ok_at, current_images as images,
        from analytics.project_status
        order by region, project_id
        """,
    )


def _trend(con: duckdb.DuckDBPyConnection, days: Optional[int] = None) -> Trend:
    """The OS-version trend of the last `days` days (all days when None), all-zero rows left out."""
    last = con.execute(f"select max(day) from {ANALYTICS}.os_version_trend").fetchone()[0]
    if last is None:
        return Trend([], [])
    first = last - dt.timedelta(days=days - 1) if days else dt.date.min
    records = con.execute(
        f"""
        select day, coalesce(os_type, 'unknown'), coalesce(os_version, 'unknown'), images
        from {ANALYTICS}.os_version_trend
        where day between ? and ?
        order by 2, 3, day
        """,
        [first, last],
    ).fetchall()
    day_list = sorted({r[0] for r in records})
    index = {d: i for i, d in enumerate(day_list)}
    pivot: Dict[Tuple[str, str], List[int]] = {}
    for day, os_type, os_version, images in records:
        pivot.setdefault((os_type, os_version), [0] * len(day_list))[index[day]] = int(images or 0)
    rows = [(k[0], k[1], v) for k, v in pivot.items() if any(v)]
    return Trend(day_list, rows)


def _summary(con: duckdb.DuckDBPyConnection, trend_days: Optional[int]) -> ReportData:
    images, stale_images, projects, regions = con.execute(
        f"select count(*), count(*) filter (where is_stale), count(distinct project_id), count(distinct region) "
        f"from {ANALYTICS}.image_inventory"
    ).fetchone()
    stale_projects = con.execute(f"select count(*) from {ANALYTICS}.project_status where is_stale").fetchone()[0]
    inventory = _rows(
        con,
        f"""
        select region, coalesce(os_type, 'unknown') as os_type, coalesce(image_type, 'unknown') as image_type,
            coalesce(architecture, 'unknown') as architecture, sum(images)::bigint as images,
        from {ANALYTICS}.inventory_summary
        group by all
        """,
    )
    return ReportData(
        latest=_latest_run(con),
        images=int(images),
        stale_images=int(stale_images),
        projects=int(projects),
        regions=int(regions),
        stale_projects=int(stale_projects),
        inventory=inventory,
        trend=_trend(con, trend_days),
    )


def _latest_changes(con: duckdb.DuckDBPyConnection, limit: int) -> List[Dict[str, Any]]:
    return _rows(
        con,
        f"""
        select changed_at, change, region, project_id, image_id, image_name, os_version, changed_columns,
        from {ANALYTICS}.image_changes
        order by changed_at desc, region, project_id, change, image_name, image_id
        limit ?
        """,
        [limit],
    )


def _totals(inventory: Sequence[Dict[str, Any]], key: str) -> List[Tuple[str, int]]:
    """Images per value of `key`, largest first (ties by name)."""
    sums: Dict[str, int] = {}
    for row in inventory:
        sums[row[key]] = sums.get(row[key], 0) + int(row["images"])
    return sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))


def _last_load_changes(con: duckdb.DuckDBPyConnection, latest: Optional[LatestRun]) -> Dict[str, int]:
    if latest is None:
        return {}
    return dict(con.execute(
        f"select change, count(*) from {ANALYTICS}.image_changes where changed_at = ? group by change",
        [latest.as_of],
    ).fetchall())
