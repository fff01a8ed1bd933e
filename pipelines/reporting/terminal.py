"""The report as text: tables that line up in a terminal, wide (CJK) characters counted as two columns."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple


from workspace_images.failures import failure_text
from workspace_images.safe_text import safe_text

from ..warehouse import Target
from .charts import is_wide
from .formatting import count, signed, utc
from .queries import ReportData, Trend, as_target, latest_changes, open_models, summary


# Column widths (terminal columns) beyond which a cell is cut with an ellipsis.
MAX_CELL = {"image_name": 40, "os_version": 36, "changed_columns": 40}


# -- terminal ------------------------------------------------------------------------------


def _width(text: str) -> int:
    """Terminal columns `text` takes: wide (CJK) characters 2, combining marks 0."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if is_wide(ch) else 1 for ch in text
    )


def _cell(value: Any, limit: Optional[int] = None) -> str:
    """A value as `safe_text` shows it (one line, control characters escaped), cut to `limit`
    columns with an ellipsis."""
    if value is None:
        return ""
    text = safe_text(value)
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


def _header_lines(label: str, data: ReportData) -> List[str]:
    lines = [f"workspace-images report: {label}"]
    latest = data.latest
    if latest is None:
        lines.append("last load: none")
    else:
        total = latest.ok + len(latest.failed)
        lines.append(
            f"last load: as of {utc(latest.as_of)}, run {latest.run_id[:12]}: "
            f"{latest.ok}/{total} projects ok, {len(latest.failed)} failed"
        )
        for p in latest.failed:
            lines.append(f"  failed {p['region']}:{p['project_id']}: "
                         f"{failure_text(p['http_status'], p['error_code'], _cell(p['error_msg'], 120))}")
    lines.append(
        f"current images: {data.images:,} in {count(data.projects, 'project')}, {count(data.regions, 'region')}; "
        f"stale (latest run failed): {count(data.stale_projects, 'project')}, {count(data.stale_images, 'image')}"
    )
    return lines


def _inventory_section(data: ReportData) -> str:
    title = "Inventory by region and OS type (current images)"
    if not data.inventory:
        return f"{title}\n(no current images)"
    os_types = sorted({r["os_type"] for r in data.inventory})
    regions = sorted({r["region"] for r in data.inventory})
    headers = ["region"] + [_cell(o) for o in os_types] + ["total"]
    counts: Dict[Tuple[str, str], int] = {}
    for r in data.inventory:
        counts[(r["region"], r["os_type"])] = counts.get((r["region"], r["os_type"]), 0) + int(r["images"])
    rows = []
    for region in regions:
        values = [counts.get((region, o), 0) for o in os_types]
        rows.append([_cell(region)] + [f"{v:,}" for v in values] + [f"{sum(values):,}"])
    column_totals = [sum(counts.get((region, o), 0) for region in regions) for o in os_types]
    rows.append(["total"] + [f"{v:,}" for v in column_totals] + [f"{sum(column_totals):,}"])
    table = format_table(headers, rows, [False] + [True] * (len(os_types) + 1))
    return f"{title}\n{table}"


def _trend_section(trend: Trend) -> str:
    if not trend.days:
        return "OS-version trend: images at the end of each day\n(no data)"
    title = (
        f"OS-version trend: images at the end of each day, {trend.days[0]:%Y-%m-%d} to {trend.days[-1]:%Y-%m-%d}"
    )
    rows = []
    for os_type, os_version, values in trend.rows:
        rows.append([_cell(os_type), _cell(os_version, MAX_CELL["os_version"])] + [f"{v:,}" for v in values]
                    + [signed(values[-1] - values[0])])
    totals = [sum(values[i] for _, _, values in trend.rows) for i in range(len(trend.days))]
    rows.append(["total", ""] + [f"{v:,}" for v in totals] + [signed(totals[-1] - totals[0])])
    headers = ["os_type", "os_version"] + [f"{d:%m-%d}" for d in trend.days] + ["change"]
    table = format_table(headers, rows, [False, False] + [True] * (len(trend.days) + 1))
    return f"{title}\n{table}"


def _changes_section(changes: List[Dict[str, Any]], limit: int) -> str:
    title = f"Latest {limit} changes"
    if not changes:
        return f"{title}\n(no changes)"
    rows = [
        [
            utc(c["changed_at"], seconds=False),
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


def terminal_report(where: Target | Path, days: int = 7, changes: int = 15,
                    pipelines_dir: Optional[Path] = None) -> str:
    """The report printed by `workspace-images report`: a header, then three tables.

    1. current images by region (rows) and os_type (columns), with totals;
    2. images per os_version at the end of each of the last `days` days, and the change
       from the first to the last of them;
    3. the latest `changes` changes (left out when `changes` is 0).

    Args:
        where: The database with the models built: a Target, or a Path of a DuckDB file.
        days: Days of trend to show.
        changes: Changes to list.
        pipelines_dir: dlt's working folder, for a destination other than a DuckDB file.

    Raises:
        UsageError: the file does not exist or has no models.
        Unreachable: the destination cannot be reached.
    """
    target = as_target(where)
    with open_models(target, pipelines_dir) as session:
        data = summary(session, days)
        recent = latest_changes(session, changes) if changes > 0 else []
    sections = ["\n".join(_header_lines(target.label, data)), _inventory_section(data), _trend_section(data.trend)]
    if changes > 0:
        sections.append(_changes_section(recent, changes))
    return "\n\n".join(sections)
