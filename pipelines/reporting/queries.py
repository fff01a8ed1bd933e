"""What the report reads: the models of schema `analytics`, through a read-only session in UTC."""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ..checks import lock_timeout_setting
from ..errors import RunFailed, UsageError, is_database_error, reason_of
from ..locking import DatabaseBusy, wait_for_database
from ..warehouse import Session, Target, connect, literal, unreachable

logger = logging.getLogger("workspace_images")

ANALYTICS = "analytics"
REQUIRED_MODELS = ("stg_project_runs", "project_status", "image_inventory", "inventory_summary", "os_version_trend",
                   "image_changes")
CHANGE_KINDS = ("added", "changed", "removed")


# -- reading the database ------------------------------------------------------------------


def as_target(where: Target | Path) -> Target:
    """`where` as a Target: a Path is a DuckDB file."""
    return where if isinstance(where, Target) else Target(db_path=Path(where))


def selection(target: Target) -> str:
    """The command line flag that names `target`: `--db FILE` or `--destination NAME`."""
    return f"--db {target.db_path}" if target.is_file else f"--destination {target.destination}"


@contextmanager
def open_models(where: Target | Path, pipelines_dir: Optional[Path] = None) -> Iterator[Session]:
    """A read-only session in UTC with a database whose models are built: a DuckDB file (waiting
    up to `lock_timeout` for a program that holds it), or another destination.

    Raises:
        UsageError: the file does not exist, or the models are not built.
        RunFailed: the file cannot be opened.
        Unreachable: the destination cannot be reached.
    """
    target = as_target(where)
    if target.file_missing:
        raise UsageError(f"{target.db_path} does not exist: load it first with `workspace-images run`")
    wait = lock_timeout_setting(None)
    with ExitStack() as stack:
        try:
            session = wait_for_database(
                lambda: stack.enter_context(connect(target, read_only=True, pipelines_dir=pipelines_dir)),
                target.label, wait, "reading it",
            )
        except DatabaseBusy:
            raise
        except Exception as exc:
            logger.debug("cannot open %s", target.label, exc_info=True)
            if not target.is_file:
                raise unreachable(target, exc) from None
            if not is_database_error(exc):
                raise
            raise RunFailed(f"cannot open {target.label}: {reason_of(exc)}") from None
        built = {row[0] for row in session.fetch(
            f"select table_name from information_schema.tables where table_schema = {literal(ANALYTICS)}"
        )[1]}
        missing = [name for name in REQUIRED_MODELS if name not in built]
        if missing:
            raise UsageError(f"{target.label} has no {ANALYTICS}.{missing[0]} model: "
                             f"run `workspace-images models {selection(target)}` first")
        yield session


def text_order(session: Session, column: str) -> str:
    """`column` as an ORDER BY key that sorts text by code point, as DuckDB and Python do;
    PostgreSQL sorts by the database's locale unless told otherwise."""
    return f'{column} collate "C"' if session.dialect == "postgres" else column


def timestamp(moment: dt.datetime) -> str:
    """`moment` as a SQL timestamp-with-time-zone literal."""
    return f"cast({literal(moment.isoformat(sep=' '))} as timestamp with time zone)"


def _rows(session: Session, sql: str) -> List[Dict[str, Any]]:
    names, rows = session.fetch(sql)
    return [dict(zip(names, row)) for row in rows]


def _by_region(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["region"], r["project_id"]))


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


def _latest_run(session: Session) -> Optional[LatestRun]:
    found = session.fetch(
        "select run_id, as_of from analytics.stg_project_runs "
        f"order by as_of desc, finished_at desc nulls last, {text_order(session, 'run_id')} limit 1"
    )[1]
    if not found:
        return None
    run_id, as_of = found[0]
    projects = _by_region(_rows(
        session,
        "select region, project_id, status, http_status, error_code, error_msg "
        f"from analytics.stg_project_runs where run_id = {literal(run_id)}",
    ))
    failed = [p for p in projects if p["status"] != "ok"]
    return LatestRun(run_id, as_of.astimezone(dt.timezone.utc), len(projects) - len(failed), failed)


def latest_project_runs(session: Session) -> List[Dict[str, Any]]:
    """Each project's latest run, with its last ok load and current image count (`project_status`)."""
    return _by_region(_rows(
        session,
        """
        select region, project_id, latest_status as status, latest_as_of as as_of, http_status, error_code,
            error_msg, last_ok_at, current_images as images
        from analytics.project_status
        """,
    ))


def _trend(session: Session, days: Optional[int] = None) -> Trend:
    """The OS-version trend of the last `days` days (all days when None), all-zero rows left out."""
    last = session.value(f"select max(day) from {ANALYTICS}.os_version_trend")
    if last is None:
        return Trend([], [])
    window = f"where day between date '{last - dt.timedelta(days=days - 1)}' and date '{last}'" if days else ""
    _, records = session.fetch(
        f"""
        select day, coalesce(os_type, 'unknown'), coalesce(os_version, 'unknown'), images
        from {ANALYTICS}.os_version_trend
        {window}
        """
    )
    day_list = sorted({r[0] for r in records})
    index = {d: i for i, d in enumerate(day_list)}
    pivot: Dict[Tuple[str, str], List[int]] = {}
    for day, os_type, os_version, images in records:
        pivot.setdefault((os_type, os_version), [0] * len(day_list))[index[day]] = int(images or 0)
    rows = [(k[0], k[1], v) for k, v in sorted(pivot.items()) if any(v)]
    return Trend(day_list, rows)


def summary(session: Session, trend_days: Optional[int]) -> ReportData:
    """What the report's header, inventory and trend show: the latest run, the current and stale counts,
    images by region, OS, type and architecture, and the OS-version trend of `trend_days` (all when None)."""
    images, stale_images, projects, regions = session.fetch(
        f"select count(*), count(*) filter (where is_stale), count(distinct project_id), count(distinct region) "
        f"from {ANALYTICS}.image_inventory"
    )[1][0]
    stale_projects = session.value(f"select count(*) from {ANALYTICS}.project_status where is_stale")
    inventory = _rows(
        session,
        f"""
        select region, coalesce(os_type, 'unknown') as os_type, coalesce(image_type, 'unknown') as image_type,
            coalesce(architecture, 'unknown') as architecture, cast(sum(images) as bigint) as images
        from {ANALYTICS}.inventory_summary
        group by region, coalesce(os_type, 'unknown'), coalesce(image_type, 'unknown'),
            coalesce(architecture, 'unknown')
        """,
    )
    return ReportData(
        latest=_latest_run(session),
        images=int(images),
        stale_images=int(stale_images),
        projects=int(projects),
        regions=int(regions),
        stale_projects=int(stale_projects),
        inventory=inventory,
        trend=_trend(session, trend_days),
    )


def latest_changes(session: Session, limit: int) -> List[Dict[str, Any]]:
    """The `limit` latest rows of `image_changes`, newest first, ties in a fixed order on every destination."""
    keys = ", ".join(text_order(session, c) + " nulls last"
                     for c in ("region", "project_id", "change", "image_name", "image_id"))
    return _rows(
        session,
        f"""
        select changed_at, change, region, project_id, image_id, image_name, os_version, changed_columns
        from {ANALYTICS}.image_changes
        order by changed_at desc, {keys}
        limit {int(limit)}
        """,
    )


def totals(inventory: Sequence[Dict[str, Any]], key: str) -> List[Tuple[str, int]]:
    """Images per value of `key`, largest first (ties by name)."""
    sums: Dict[str, int] = {}
    for row in inventory:
        sums[row[key]] = sums.get(row[key], 0) + int(row["images"])
    return sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))


def last_load_changes(session: Session, latest: Optional[LatestRun]) -> Dict[str, int]:
    """Images added, changed and removed by the `latest` run's load, by kind of change (none without a run)."""
    if latest is None:
        return {}
    return {change: int(n) for change, n in session.fetch(
        f"select change, count(*) from {ANALYTICS}.image_changes where changed_at = {timestamp(latest.as_of)} "
        "group by change"
    )[1]}
