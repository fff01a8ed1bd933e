"""`workspace-images report`: terminal tables, CSV/Parquet exports and an HTML page with charts.

Everything here reads the models of schema `analytics` (the header the run log of finished
loads, `analytics.stg_project_runs`), through a read-only DuckDB connection in UTC.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import json
import logging
import os
import select
import shutil
import subprocess
import tempfile
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import duckdb

from workspace_images.source.client import failure_text

from . import charts
from .charts import Series, esc
from .locking import wait_for_database
from .runner import RunFailed, UsageError, lock_timeout_setting

logger = logging.getLogger("workspace_images")

ANALYTICS = "analytics"
REQUIRED_MODELS = ("stg_project_runs", "image_inventory", "inventory_summary", "os_version_trend", "image_changes")
CHANGE_KINDS = ("added", "changed", "removed")
HTML_CHANGES = 50
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SCREENSHOT_WIDTH = 1280
SCREENSHOT_TIMEOUT = 60.0
MAX_SCREENSHOT_HEIGHT = 30000
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Column widths (terminal columns) beyond which a cell is cut with an ellipsis.
MAX_CELL = {"image_name": 40, "os_version": 36, "changed_columns": 40}


class ScreenshotFailed(Exception):
    """Chromium was found but did not produce the screenshot."""


# -- reading the database ------------------------------------------------------------------


@contextmanager
def _connect(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection in UTC to a database whose models are built."""
    db_path = Path(db_path)
    if not db_path.exists():
        raise UsageError(f"{db_path} does not exist: load it first with `workspace-images run`")
    try:
        con = wait_for_database(
            lambda: duckdb.connect(str(db_path), read_only=True), db_path, lock_timeout_setting(None), "reading it"
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
    """Each project's latest run, with its last ok load and current image count."""
    return _rows(
        con,
        """
        with latest as (
            select region, project_id, status, as_of, http_status, error_code, error_msg,
            from analytics.stg_project_runs
            qualify row_number() over (partition by project_id order by as_of desc, started_at desc) = 1
        ),
        last_ok as (
            select project_id, max(as_of) as last_ok_at,
            from analytics.stg_project_runs where status = 'ok' group by project_id
        ),
        inventory as (
            select project_id, count(*) as images, from analytics.image_inventory group by project_id
        )
        select latest.*, last_ok.last_ok_at, coalesce(inventory.images, 0) as images,
        from latest
        left join last_ok on last_ok.project_id = latest.project_id
        left join inventory on inventory.project_id = latest.project_id
        order by latest.region, latest.project_id
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
    stale_projects = con.execute(
        """
        select count(*) from (
            select status from analytics.stg_project_runs
            qualify row_number() over (partition by project_id order by as_of desc, started_at desc) = 1
        ) where status = 'failed'
        """
    ).fetchone()[0]
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


# -- terminal ------------------------------------------------------------------------------


def _width(text: str) -> int:
    """Terminal columns `text` takes: wide (CJK) characters 2, combining marks 0."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text
    )


def _cell(value: Any, limit: Optional[int] = None) -> str:
    """A value as one line of text, cut to `limit` columns with an ellipsis."""
    if value is None:
        return ""
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in str(value))
    if limit and _width(text) > limit:
        cut = ""
        for ch in text:
            if _width(cut + ch) > limit - 1:
                break
            cut += ch
        text = cut + "…"
    return text


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """A fixed-width table: headers, a rule, rows; columns two spaces apart, CJK-aware, no trailing blanks."""
    widths = [max([_width(h)] + [_width(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = []
        for cell, width, is_right in zip(cells, widths, right):
            pad = " " * (width - _width(cell))
            padded.append(pad + cell if is_right else cell + pad)
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _signed(value: int) -> str:
    return f"{value:+,}" if value else "0"


def _utc(moment: dt.datetime, seconds: bool = True) -> str:
    return f"{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M{':%S' if seconds else ''}}Z"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _header_lines(db_path: Path, data: ReportData) -> List[str]:
    lines = [f"workspace-images report: {db_path}"]
    latest = data.latest
    if latest is None:
        lines.append("last load: none")
    else:
        total = latest.ok + len(latest.failed)
        lines.append(
            f"last load: as of {_utc(latest.as_of)}, run {latest.run_id[:12]}: "
            f"{latest.ok}/{total} projects ok, {len(latest.failed)} failed"
        )
        for p in latest.failed:
            lines.append(f"  failed {p['region']}:{p['project_id']}: "
                         f"{failure_text(p['http_status'], p['error_code'], _cell(p['error_msg'], 120))}")
    lines.append(
        f"current images: {data.images:,} in {_count(data.projects, 'project')}, {_count(data.regions, 'region')}; "
        f"stale (latest run failed): {_count(data.stale_projects, 'project')}, {_count(data.stale_images, 'image')}"
    )
    return lines


def _inventory_section(data: ReportData) -> str:
    title = "Inventory by region and OS type (current images)"
    if not data.inventory:
        return f"{title}\n(no current images)"
    os_types = sorted({r["os_type"] for r in data.inventory})
    regions = sorted({r["region"] for r in data.inventory})
    counts: Dict[Tuple[str, str], int] = {}
    for r in data.inventory:
        counts[(r["region"], r["os_type"])] = counts.get((r["region"], r["os_type"]), 0) + int(r["images"])
    rows = []
    for region in regions:
        values = [counts.get((region, o), 0) for o in os_types]
        rows.append([region] + [f"{v:,}" for v in values] + [f"{sum(values):,}"])
    column_totals = [sum(counts.get((region, o), 0) for region in regions) for o in os_types]
    rows.append(["total"] + [f"{v:,}" for v in column_totals] + [f"{sum(column_totals):,}"])
    table = format_table(["region"] + os_types + ["total"], rows, [False] + [True] * (len(os_types) + 1))
    return f"{title}\n{table}"


def _trend_section(trend: Trend) -> str:
    if not trend.days:
        return "OS-version trend: images at the end of each day\n(no data)"
    title = (
        f"OS-version trend: images at the end of each day, {trend.days[0]:%Y-%m-%d} to {trend.days[-1]:%Y-%m-%d}"
    )
    rows = []
    for os_type, os_version, values in trend.rows:
        rows.append([os_type, _cell(os_version, MAX_CELL["os_version"])] + [f"{v:,}" for v in values]
                    + [_signed(values[-1] - values[0])])
    totals = [sum(values[i] for _, _, values in trend.rows) for i in range(len(trend.days))]
    rows.append(["total", ""] + [f"{v:,}" for v in totals] + [_signed(totals[-1] - totals[0])])
    headers = ["os_type", "os_version"] + [f"{d:%m-%d}" for d in trend.days] + ["change"]
    table = format_table(headers, rows, [False, False] + [True] * (len(trend.days) + 1))
    return f"{title}\n{table}"


def _changes_section(changes: List[Dict[str, Any]], limit: int) -> str:
    title = f"Latest {limit} changes"
    if not changes:
        return f"{title}\n(no changes)"
    rows = [
        [
            _utc(c["changed_at"], seconds=False),
            c["change"],
            _cell(c["region"]),
            _cell(c["project_id"])[:8],
            _cell(c["image_name"], MAX_CELL["image_name"]),
            _cell(c["os_version"], MAX_CELL["os_version"]),
            _cell(c["changed_columns"], MAX_CELL["changed_columns"]),
        ]
        for c in changes
    ]
    headers = ["changed_at", "change", "region", "project", "image_name", "os_version", "changed_columns"]
    return f"{title}\n{format_table(headers, rows, [False] * len(headers))}"


def terminal_report(db_path: Path, days: int = 7, changes: int = 15) -> str:
    """The report printed by `workspace-images report`: a header, then three tables.

    1. current images by region (rows) and os_type (columns), with totals;
    2. images per os_version at the end of each of the last `days` days, and the change
       from the first to the last of them;
    3. the latest `changes` changes (left out when `changes` is 0).

    Args:
        db_path: DuckDB file with the models built.
        days: Days of trend to show.
        changes: Changes to list.

    Raises:
        UsageError: the file does not exist or has no models.
    """
    db_path = Path(db_path)
    with _connect(db_path) as con:
        data = _summary(con, days)
        latest_changes = _latest_changes(con, changes) if changes > 0 else []
    sections = ["\n".join(_header_lines(db_path, data)), _inventory_section(data), _trend_section(data.trend)]
    if changes > 0:
        sections.append(_changes_section(latest_changes, changes))
    return "\n\n".join(sections)


# -- exports -------------------------------------------------------------------------------


def export(db_path: Path, directory: Path, fmt: str) -> List[Path]:
    """Write every table of schema `analytics` to `directory/<table>.<fmt>` with DuckDB's COPY.

    Args:
        db_path: DuckDB file with the models built.
        directory: Created when missing; existing files of the same names are replaced.
        fmt: "csv" (with a header row, timestamps in UTC) or "parquet".

    Returns:
        The files written, in table-name order.
    """
    options = {"csv": "format csv, header true", "parquet": "format parquet, compression zstd"}
    if fmt not in options:
        raise UsageError(f"export format {fmt!r}: use csv or parquet")
    directory = Path(directory)
    with _connect(db_path) as con:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by table_name", [ANALYTICS]
        ).fetchall()]
        written = []
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for table in tables:
                target = directory / f"{table}.{fmt}"
                quoted = str(target).replace("'", "''")
                con.execute(f'copy {ANALYTICS}."{table}" to \'{quoted}\' ({options[fmt]})')
                written.append(target)
                logger.info("exported %s.%s to %s", ANALYTICS, table, target)
        except (OSError, duckdb.IOException) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip().splitlines()[0]
            raise UsageError(f"--{fmt} {directory}: cannot write there ({reason})") from None
    return written


# -- HTML ----------------------------------------------------------------------------------

CSS = """
:root { --ink: #1f2430; --muted: #667085; --line: #e4e7ec; --bg: #f4f6f9; --card: #ffffff;
        --accent: #4269d0; --good: #2f9e44; --bad: #d9480f; --warn: #b8860b; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
             "Noto Sans", "Noto Sans CJK SC", "PingFang SC", "Hiragino Sans", "Microsoft YaHei",
             "WenQuanYi Micro Hei", sans-serif;
       font-variant-numeric: tabular-nums; }
main { max-width: 1200px; margin: 0 auto; padding: 28px 24px 40px; }
header.top { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between;
             gap: 4px 24px; margin-bottom: 18px; }
h1 { font-size: 24px; line-height: 1.2; margin: 0; letter-spacing: -0.01em; }
h1 .dot { color: var(--accent); }
.subtitle { color: var(--muted); margin: 0; }
h2 { font-size: 17px; margin: 30px 0 10px; }
h2 small { font-weight: 400; color: var(--muted); font-size: 13px; margin-left: 8px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 12px; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
.kpi .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .05em; }
.kpi .value { font-size: 26px; font-weight: 650; line-height: 1.25; margin-top: 2px; }
.kpi .note { color: var(--muted); font-size: 12.5px; }
.kpi.alert { border-color: #f3b8a0; background: #fff6f2; }
.kpi.alert .value { color: var(--bad); }
.kpi .good { color: var(--good); } .kpi .bad { color: var(--bad); } .kpi .warn { color: var(--warn); }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 10px;
         padding: 14px 16px 12px; }
figcaption { margin-bottom: 8px; }
figcaption strong { display: block; font-size: 14.5px; }
figcaption span { color: var(--muted); font-size: 12.5px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; }
svg.chart { display: block; width: 100%; height: auto; overflow: visible; }
svg text { font-size: 12.5px; fill: var(--ink); }
svg text.axis { fill: var(--muted); font-size: 11.5px; }
svg text.value { fill: var(--muted); font-size: 11.5px; }
svg text.empty { fill: var(--muted); font-size: 14px; }
svg .empty-box { fill: #fafbfc; stroke: var(--line); stroke-dasharray: 4 4; }
svg .grid { stroke: #eef0f3; stroke-width: 1; }
svg .axis-line { stroke: #c9ced6; stroke-width: 1; }
svg .area { stroke: none; opacity: .92; }
svg .area-edge { fill: none; stroke: #fff; stroke-width: .8; stroke-opacity: .7; pointer-events: none; }
svg .bar:hover, svg .area:hover { opacity: .8; }
svg .hover rect { fill: transparent; }
svg .hover line { stroke: var(--ink); stroke-width: 1; stroke-dasharray: 3 3; opacity: 0; }
svg .hover:hover rect { fill: rgba(31, 36, 48, .04); }
svg .hover:hover line { opacity: .5; }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 10px 0 0; padding: 0;
          font-size: 12.5px; color: #3b4252; }
.legend li { display: inline-flex; align-items: center; gap: 6px; }
.legend .note { color: var(--muted); font-variant-numeric: tabular-nums; }
.swatch { width: 11px; height: 11px; border-radius: 3px; display: inline-block; }
.table-wrap { background: var(--card); border: 1px solid var(--line); border-radius: 10px; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
td.columns { min-width: 9em; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: baseline; }
th { font-size: 11.5px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted);
     background: #fafbfc; font-weight: 600; white-space: nowrap; }
tbody tr:last-child td { border-bottom: none; }
tbody tr:nth-child(even) td { background: #fcfcfd; }
td.num, th.num { text-align: right; }
td.nowrap { white-space: nowrap; }
td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace;
                 font-size: 12px; }
td.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11.5px; font-weight: 600; }
.badge.added { background: #e6f4ea; color: #1e7a34; }
.badge.removed { background: #fdeae4; color: #b4380b; }
.badge.changed { background: #fdf3d8; color: #8a6100; }
.badge.ok { background: #e6f4ea; color: #1e7a34; }
.badge.failed { background: #fdeae4; color: #b4380b; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
@media (max-width: 640px) { main { padding: 16px 12px; } .grid2 { grid-template-columns: 1fr; } }
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _day_label(day: dt.date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}"


def _figure(name: str, title: str, note: str, svg: str, extra: str = "") -> str:
    return (
        f'<figure data-chart="{esc(name)}"><figcaption><strong>{esc(title)}</strong>'
        f"<span>{esc(note)}</span></figcaption>{svg}{extra}</figure>"
    )


def _kpi(label: str, value: str, note: str, alert: bool = False) -> str:
    css = "kpi alert" if alert else "kpi"
    return (
        f'<div class="{css}"><div class="label">{esc(label)}</div><div class="value">{value}</div>'
        f'<div class="note">{note}</div></div>'
    )


def _changes_per_day(con: duckdb.DuckDBPyConnection) -> Tuple[List[dt.date], Dict[str, List[int]], Optional[str]]:
    """Changes per UTC day and kind, leaving out the first load (where every image is 'added').

    Returns:
        (days, counts per kind aligned with days, a note on what was left out or None).
    """
    first = con.execute(
        f"select min(changed_at) from {ANALYTICS}.image_changes where change = 'added'"
    ).fetchone()[0]
    if first is None:
        return [], {}, None
    initial = con.execute(
        f"select count(*) from {ANALYTICS}.image_changes where change = 'added' and changed_at = ?", [first]
    ).fetchone()[0]
    records = con.execute(
        f"""
        select changed_at::date as day, change, count(*)
        from {ANALYTICS}.image_changes
        where not (change = 'added' and changed_at = ?)
        group by all
        """,
        [first],
    ).fetchall()
    note = f"The first load ({_utc(first, seconds=False)}, {initial:,} images added) is left out."
    if not records:
        return [], {}, note
    grid = [d for d in con.execute(f"select min(day), max(day) from {ANALYTICS}.os_version_trend").fetchone() if d]
    seen = [r[0] for r in records]
    start, end = min(seen + grid), max(seen + grid)
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    counts = {kind: [0] * len(days) for kind in CHANGE_KINDS}
    for day, change, n in records:
        if change in counts:
            counts[change][(day - start).days] = int(n)
    # drop leading days with nothing, typically the first load's day
    while days and not any(counts[k][0] for k in CHANGE_KINDS):
        days.pop(0)
        for k in CHANGE_KINDS:
            counts[k].pop(0)
    return days, counts, note


def _last_load_changes(con: duckdb.DuckDBPyConnection, latest: Optional[LatestRun]) -> Dict[str, int]:
    if latest is None:
        return {}
    return dict(con.execute(
        f"select change, count(*) from {ANALYTICS}.image_changes where changed_at = ? group by change",
        [latest.as_of],
    ).fetchall())


def _changes_table(changes: List[Dict[str, Any]]) -> str:
    if not changes:
        return '<p class="subtitle">No changes yet.</p>'
    rows = []
    for c in changes:
        kind = c["change"] if c["change"] in CHANGE_KINDS else ""
        project = c["project_id"] or ""
        rows.append(
            "<tr>"
            f'<td class="nowrap mono">{esc(_utc(c["changed_at"], seconds=False)[:-1])}</td>'
            f'<td><span class="badge {kind}">{esc(c["change"])}</span></td>'
            f'<td class="nowrap">{esc(c["region"] or "")}</td>'
            f'<td class="mono" title="{esc(project)}">{esc(project[:8])}</td>'
            f'<td title="{esc(c["image_id"] or "")}">{esc(c["image_name"] or "")}</td>'
            f'<td>{esc(c["os_version"] or "")}</td>'
            f'<td class="muted columns">{esc(c["changed_columns"] or "")}</td>'
            "</tr>"
        )
    headers = ("changed at (UTC)", "change", "region", "project", "image", "OS version", "changed columns")
    head = "".join(f"<th>{h}</th>" for h in headers)
    return (
        f'<div class="table-wrap"><table data-table="changes"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div>'
    )


def _projects_table(projects: List[Dict[str, Any]]) -> str:
    if not projects:
        return '<p class="subtitle">No runs yet.</p>'
    rows = []
    for p in projects:
        error = ""
        if p["status"] != "ok":
            error = failure_text(p["http_status"], p["error_code"], p["error_msg"])
        last_ok = _utc(p["last_ok_at"], seconds=False) if p["last_ok_at"] else "never"
        rows.append(
            "<tr>"
            f'<td class="nowrap">{esc(p["region"])}</td>'
            f'<td class="mono">{esc(p["project_id"])}</td>'
            f'<td><span class="badge {"ok" if p["status"] == "ok" else "failed"}">{esc(p["status"])}</span></td>'
            f'<td class="num">{int(p["images"]):,}</td>'
            f'<td class="nowrap mono">{esc(last_ok.rstrip("Z"))}</td>'
            f'<td class="muted">{esc(error)}</td>'
            "</tr>"
        )
    head = (
        "<th>region</th><th>project</th><th>latest run</th><th class=\"num\">current images</th>"
        "<th>last ok load (UTC)</th><th>error</th>"
    )
    return (
        f'<div class="table-wrap"><table data-table="projects"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></div>'
    )


def _kpis(data: ReportData, last_changes: Dict[str, int]) -> str:
    """The row of headline numbers at the top of the page."""
    latest = data.latest
    if latest is None:
        last_load = _kpi("Last load", "never", "nothing loaded yet")
        projects = _kpi("Projects", "0/0", "no run yet")
    else:
        run = f'{latest.as_of:%H:%M} UTC · run <span class="mono">{esc(latest.run_id[:12])}</span>'
        last_load = _kpi("Last load", f"{latest.as_of:%Y-%m-%d}", run)
        failed = f', <span class="bad">{len(latest.failed)} failed</span>' if latest.failed else ""
        total = latest.ok + len(latest.failed)
        projects = _kpi("Projects", f"{latest.ok}/{total}", f"ok in the last load{failed}", alert=bool(latest.failed))
    where = f"current, in {_count(data.projects, 'project')} and {_count(data.regions, 'region')}"
    images = _kpi("Images", f"{data.images:,}", where)
    stale = _kpi(
        "Stale projects", f"{data.stale_projects}",
        f"latest run failed · {_count(data.stale_images, 'image')} not refreshed" if data.stale_projects
        else "every project's latest run loaded",
        alert=data.stale_projects > 0,
    )
    kinds = []
    for kind, sign, css in (("added", "+", "good"), ("removed", "−", "bad"), ("changed", "", "warn")):
        n = last_changes.get(kind, 0)
        kinds.append(f'<span class="{css}">{sign if n else ""}{n:,} {kind}</span>')
    changes = _kpi("Changes in last load", f"{sum(last_changes.values()):,}", " · ".join(kinds))
    return last_load + projects + images + stale + changes


def render_html(db_path: Path) -> str:
    """The report page as one self-contained HTML document (inline CSS and SVG, no scripts)."""
    db_path = Path(db_path)
    with _connect(db_path) as con:
        data = _summary(con, None)
        latest_changes = _latest_changes(con, HTML_CHANGES)
        projects = _latest_project_runs(con)
        change_days, change_counts, change_note = _changes_per_day(con)
        last_changes = _last_load_changes(con, data.latest)

    latest = data.latest
    as_of = _utc(latest.as_of, seconds=False) if latest else "never"
    kpis = _kpis(data, last_changes)

    trend = data.trend
    trend_series = [
        Series(os_version, values, charts.colour(i)) for i, (_, os_version, values) in enumerate(trend.rows)
    ]
    period = f"{trend.days[0]:%Y-%m-%d} to {trend.days[-1]:%Y-%m-%d}" if trend.days else "no days loaded"
    trend_svg = charts.stacked_area(
        [_day_label(d) for d in trend.days], list(reversed(trend_series)),
        title="Images per OS version at the end of each day", empty_message="No images loaded yet",
    )
    trend_figure = _figure(
        "os_version_trend", "Images per OS version",
        f"Distinct images present at the end of each UTC day, stacked by OS version; {period}. "
        "The legend gives the last day's count and the change over the period; hover a day for its numbers.",
        trend_svg,
        charts.legend(trend_series, [f"{v[-1]:,} ({_signed(v[-1] - v[0])})" for _, _, v in trend.rows]),
    )

    breakdowns = [
        (name, title, _totals(data.inventory, key))
        for key, name, title in (
            ("region", "inventory_by_region", "By region"),
            ("os_type", "inventory_by_os_type", "By OS type"),
            ("image_type", "inventory_by_image_type", "By image type"),
            ("architecture", "inventory_by_architecture", "By architecture"),
        )
    ]
    label_width = charts.label_room([label for _, _, items in breakdowns for label, _ in items], 540)
    inventory_figures = []
    for name, title, items in breakdowns:
        svg = charts.horizontal_bars(
            items, title=f"Current images {title.lower()}", label_width=label_width,
            empty_message="No current images",
        )
        inventory_figures.append(
            _figure(name, title, f"{_count(len(items), 'value')} · {_count(data.images, 'current image')}", svg)
        )

    change_series = [Series(kind, change_counts[kind], charts.CHANGE_COLOURS[kind]) for kind in CHANGE_KINDS] \
        if change_days else []
    changes_svg = charts.stacked_bars(
        [_day_label(d) for d in change_days], change_series, title="Changes per day by kind", unit="images",
        empty_message="No changes since the first load" if change_note else "No changes yet",
    )
    changes_figure = _figure(
        "changes_per_day", "Changes per day",
        "Images added, removed (withdrawn) and changed (a new version) per UTC day. " + (change_note or ""),
        changes_svg, charts.legend(change_series),
    )

    title = "Workspace images report"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{esc(title)} · {esc(db_path.name)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header class="top">
<h1>Workspace images<span class="dot">.</span></h1>
<p class="subtitle">Huawei Cloud Workspace product images · <span class="mono">{esc(db_path.name)}</span>
· as of {esc(as_of)}</p>
</header>
<section class="kpis">{kpis}</section>
<h2>OS versions over time</h2>
{trend_figure}
<h2>Current inventory<small>{data.images:,} images</small></h2>
<div class="grid2">{"".join(inventory_figures)}</div>
<h2>Changes</h2>
{changes_figure}
<h2>Projects<small>latest run of each project</small></h2>
{_projects_table(projects)}
<h2>Latest changes<small>newest first, at most {HTML_CHANGES}</small></h2>
{_changes_table(latest_changes)}
<footer>Generated by workspace-images from the models in schema <span class="mono">analytics</span> of
<span class="mono">{esc(db_path.name)}</span>. All times UTC.</footer>
</main>
</body>
</html>
"""


def write_html(db_path: Path, path: Path) -> Path:
    """Write the report page (see `render_html`) to `path`, creating its folder.

    Returns:
        `path`.
    """
    path = Path(path)
    page = render_html(db_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--html {path}: cannot write there ({exc.strerror or exc})") from None
    return path


# -- screenshot ----------------------------------------------------------------------------


def find_chromium() -> Optional[str]:
    """The first Chromium-family browser on PATH, or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _DevTools:
    """A headless Chromium driven over `--remote-debugging-pipe` (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self, binary: str, profile: str, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        to_child, self._write = self._pipe()
        self._read, from_child = self._pipe()
        self._next_id = 0
        self._buffer = b""
        self.events: List[str] = []

        def wire() -> None:  # in the child, before exec
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.process = subprocess.Popen(
            [
                binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-default-apps", "--no-first-run", "--no-default-browser-check",
                "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=wire, close_fds=False,
        )
        os.close(to_child)
        os.close(from_child)

    @staticmethod
    def _pipe() -> Tuple[int, int]:
        # move both ends above fd 4, close-on-exec, so that the child's dup2 onto 3 and 4 never aliases them
        ends = []
        for fd in os.pipe():
            ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
            os.close(fd)
        return ends[0], ends[1]

    def _receive(self) -> Dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise ScreenshotFailed("chromium did not answer in time")
            ready, _, _ = select.select([self._read], [], [], remaining)
            if ready:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise ScreenshotFailed("chromium exited early")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(
        self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None
    ) -> Dict[str, Any]:
        self._next_id += 1
        message: Dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._write, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise ScreenshotFailed("chromium exited early") from None
        while True:
            answer = self._receive()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise ScreenshotFailed(f"{method}: {answer['error'].get('message')}")
                return answer.get("result", {})
            if "method" in answer:
                self.events.append(answer["method"])

    def wait_for(self, event: str) -> None:
        while event not in self.events:
            answer = self._receive()
            if "method" in answer:
                self.events.append(answer["method"])

    def close(self) -> str:
        """Close the browser; return what it wrote on stderr."""
        try:
            os.write(self._write, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass
        os.close(self._write)
        try:
            _, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        os.close(self._read)
        return err.decode("utf-8", "replace") if err else ""


def screenshot(html_path: Path, png_path: Path, width: int = SCREENSHOT_WIDTH) -> Optional[Path]:
    """Capture the whole page at `html_path` as a PNG, `width` CSS pixels wide, with headless Chromium.

    Returns:
        `png_path`, or None (with a warning) when no Chromium is installed.

    Raises:
        ScreenshotFailed: Chromium is there but did not deliver the image.
    """
    binary = find_chromium()
    if binary is None:
        logger.warning(
            "no chromium found, so no screenshot of %s: install it with `apt-get install chromium` "
            "(or `make demo` as root)", html_path,
        )
        return None
    url = Path(html_path).resolve().as_uri()
    png_path = Path(png_path)
    with tempfile.TemporaryDirectory(prefix="workspace-images-chromium-") as profile:
        try:
            browser = _DevTools(binary, profile, SCREENSHOT_TIMEOUT)
        except OSError as exc:
            raise ScreenshotFailed(f"{binary}: cannot start: {exc}") from None
        failure: Optional[str] = None
        try:
            png = _capture(browser, url, width)
        except (ScreenshotFailed, KeyError, ValueError) as exc:
            failure = str(exc)
        finally:
            stderr = browser.close().strip()
        if failure is not None:
            detail = f" ({stderr.splitlines()[-1]})" if stderr else ""
            raise ScreenshotFailed(f"{binary}: {failure}{detail}")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(png)
    return png_path


def _capture(browser: _DevTools, url: str, width: int) -> bytes:
    """Open `url` in a new tab `width` pixels wide and return the whole page as PNG bytes."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    browser.call("Page.enable", session=session)
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False}, session=session,
    )
    browser.call("Page.navigate", {"url": url}, session=session)
    browser.wait_for("Page.loadEventFired")
    size = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
    height = min(max(int(size["height"]), 1), MAX_SCREENSHOT_HEIGHT)
    shot = browser.call(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True,
         "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
        session=session,
    )
    return base64.b64decode(shot["data"])
