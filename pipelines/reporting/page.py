"""The report as one self-contained HTML page: KPIs, SVG charts and tables, its CSS from `report.css`."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from workspace_images.failures import failure_text

from ..errors import UsageError
from ..warehouse import Session, Target
from . import charts
from .charts import TOOLTIP_CHARS, Series, cut, esc, shown
from .formatting import count, signed, utc
from .queries import (
    ANALYTICS,
    CHANGE_KINDS,
    ReportData,
    as_target,
    last_load_changes,
    latest_changes,
    latest_project_runs,
    open_models,
    summary,
    timestamp,
    totals,
)


HTML_CHANGES = 50
CSS = resources.files(__package__).joinpath("report.css").read_text(encoding="utf-8")
"""The page's style sheet, inlined into the page."""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


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


def _changes_per_day(session: Session) -> Tuple[List[dt.date], Dict[str, List[int]], Optional[str]]:
    """Changes per UTC day and kind, leaving out the first load (where every image is 'added').

    Returns:
        (days, counts per kind aligned with days, a note on what was left out or None).
    """
    first = session.value(f"select min(changed_at) from {ANALYTICS}.image_changes where change = 'added'")
    if first is None:
        return [], {}, None
    initial = session.value(
        f"select count(*) from {ANALYTICS}.image_changes where change = 'added' and changed_at = {timestamp(first)}"
    )
    _, records = session.fetch(
        f"""
        select cast(changed_at as date) as day, change, count(*)
        from {ANALYTICS}.image_changes
        where not (change = 'added' and changed_at = {timestamp(first)})
        group by cast(changed_at as date), change
        """
    )
    note = f"The first load ({utc(first, seconds=False)}, {initial:,} images added) is left out."
    if not records:
        return [], {}, note
    grid = [d for d in session.fetch(f"select min(day), max(day) from {ANALYTICS}.os_version_trend")[1][0] if d]
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


def _changes_table(changes: List[Dict[str, Any]]) -> str:
    if not changes:
        return '<p class="subtitle">No changes yet.</p>'
    rows = []
    for c in changes:
        kind = c["change"] if c["change"] in CHANGE_KINDS else ""
        project = c["project_id"] or ""
        rows.append(
            "<tr>"
            f'<td class="nowrap mono">{esc(utc(c["changed_at"], seconds=False)[:-1])}</td>'
            f'<td><span class="badge {kind}">{shown(c["change"])}</span></td>'
            f'<td class="nowrap">{shown(c["region"] or "")}</td>'
            f'<td class="mono" title="{esc(cut(project, TOOLTIP_CHARS))}">{esc(project[:8])}</td>'
            f'<td title="{esc(cut(c["image_id"] or "", TOOLTIP_CHARS))}">{shown(c["image_name"] or "")}</td>'
            f'<td>{shown(c["os_version"] or "")}</td>'
            f'<td class="muted columns">{shown(c["changed_columns"] or "")}</td>'
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
        last_ok = utc(p["last_ok_at"], seconds=False) if p["last_ok_at"] else "never"
        rows.append(
            "<tr>"
            f'<td class="nowrap">{shown(p["region"])}</td>'
            f'<td class="mono">{shown(p["project_id"])}</td>'
            f'<td><span class="badge {"ok" if p["status"] == "ok" else "failed"}">{shown(p["status"])}</span></td>'
            f'<td class="num">{int(p["images"]):,}</td>'
            f'<td class="nowrap mono">{esc(last_ok.rstrip("Z"))}</td>'
            f'<td class="muted">{shown(error)}</td>'
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
    where = f"current, in {count(data.projects, 'project')} and {count(data.regions, 'region')}"
    images = _kpi("Images", f"{data.images:,}", where)
    stale = _kpi(
        "Stale projects", f"{data.stale_projects}",
        f"latest run failed · {count(data.stale_images, 'image')} not refreshed" if data.stale_projects
        else "every project's latest run loaded",
        alert=data.stale_projects > 0,
    )
    kinds = []
    for kind, sign, css in (("added", "+", "good"), ("removed", "−", "bad"), ("changed", "", "warn")):
        n = last_changes.get(kind, 0)
        kinds.append(f'<span class="{css}">{sign if n else ""}{n:,} {kind}</span>')
    changes = _kpi("Changes in last load", f"{sum(last_changes.values()):,}", " · ".join(kinds))
    return last_load + projects + images + stale + changes


def render_html(where: Target | Path, pipelines_dir: Optional[Path] = None) -> str:
    """The report page as one self-contained HTML document (inline CSS and SVG, no scripts).

    Args:
        where: The database with the models built: a Target, or a Path of a DuckDB file.
        pipelines_dir: dlt's working folder, for a destination other than a DuckDB file.
    """
    target = as_target(where)
    database = target.db_path.name if target.db_path is not None else target.label
    with open_models(target, pipelines_dir) as session:
        data = summary(session, None)
        recent = latest_changes(session, HTML_CHANGES)
        projects = latest_project_runs(session)
        change_days, change_counts, change_note = _changes_per_day(session)
        last_changes = last_load_changes(session, data.latest)

    latest = data.latest
    as_of = utc(latest.as_of, seconds=False) if latest else "never"
    kpis = _kpis(data, last_changes)

    trend = data.trend
    trend_series = charts.top_series([Series(os_version, values, "") for _, os_version, values in trend.rows])
    period = f"{trend.days[0]:%Y-%m-%d} to {trend.days[-1]:%Y-%m-%d}" if trend.days else "no days loaded"
    trend_svg = charts.stacked_area(
        [_day_label(d) for d in trend.days], list(reversed(trend_series)),
        title="Images per OS version at the end of each day", empty_message="No images loaded yet",
    )
    trend_figure = _figure(
        "os_version_trend", "Images per OS version",
        f"Distinct images present at the end of each UTC day, stacked by OS version; {period}. "
        "The legend gives the last day's count and the change over the period; hover a day for its numbers. "
        f"Past {charts.TOP_SERIES} OS versions, the smaller ones are summed as other.",
        trend_svg,
        charts.legend(trend_series, [f"{v[-1]:,} ({signed(round(v[-1] - v[0]))})" for v in (s.values for s in trend_series)]),
    )

    breakdowns = [
        (name, title, totals(data.inventory, key))
        for key, name, title in (
            ("region", "inventory_by_region", "By region"),
            ("os_type", "inventory_by_os_type", "By OS type"),
            ("image_type", "inventory_by_image_type", "By image type"),
            ("architecture", "inventory_by_architecture", "By architecture"),
        )
    ]
    label_width = charts.label_room(
        [label for _, _, items in breakdowns for label, _ in charts.top_items(items)], 540
    )
    inventory_figures = []
    for name, title, items in breakdowns:
        svg = charts.horizontal_bars(
            charts.top_items(items), title=f"Current images {title.lower()}", label_width=label_width,
            empty_message="No current images",
        )
        inventory_figures.append(
            _figure(name, title, f"{count(len(items), 'value')} · {count(data.images, 'current image')}", svg)
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
<title>{esc(title)} · {esc(database)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header class="top">
<h1>Workspace images<span class="dot">.</span></h1>
<p class="subtitle">Huawei Cloud Workspace product images · <span class="mono">{esc(database)}</span>
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
{_changes_table(recent)}
<footer>Generated by workspace-images from the models in schema <span class="mono">analytics</span> of
<span class="mono">{esc(database)}</span>. All times UTC.</footer>
</main>
</body>
</html>
"""


def write_html(where: Target | Path, path: Path, pipelines_dir: Optional[Path] = None) -> Path:
    """Write the report page (see `render_html`) to `path`, creating its folder.

    Returns:
        `path`.
    """
    path = Path(path)
    page = render_html(where, pipelines_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--html {path}: cannot write there ({exc.strerror or exc})") from None
    return path
