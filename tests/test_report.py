"""The report: terminal tables, exports, and the HTML page opened in a real headless Chromium."""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import logging
import re
import struct
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import duckdb
import pytest

from workspace_images.pipelines import reporting as report
from workspace_images.pipelines.reporting import charts
from workspace_images.pipelines.errors import UsageError
from workspace_images.simulator import Simulator
from tests.helpers import TOKEN, load, query

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
FIGURES = [
    "os_version_trend", "inventory_by_region", "inventory_by_os_type", "inventory_by_image_type",
    "inventory_by_architecture", "changes_per_day",
]
DAYS = 4
TRICKY_NAME = "<b>Tom & Jerry</b> 测试 «été»"
CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


# -- a history loaded through the real pipeline ----------------------------------------------


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    """3 projects x 80 images over 4 simulated days; on the last day one project fails and
    another publishes an image whose name needs escaping."""
    folder = tmp_path_factory.mktemp("history")
    db = folder / "images.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLT_DATA_DIR", str(folder / "dlt_data"))
        mp.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        mp.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
        mp.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "0.05")
        with Simulator(projects=3, images=80, seed=11, token=TOKEN) as sim:
            failing, publishing = sim.projects[2], sim.projects[0]
            for day in range(DAYS):
                sim.set_day(day)
                if day == DAYS - 1:
                    sim.fail_project(failing.project_id, "status")  # 403 APIG.0302, not retried
                    sim.publish(publishing.project_id, {"name": TRICKY_NAME, "os_type": "Linux"})
                load(db, sim, day=day)
            yield {"db": db, "sim": sim, "failing": failing, "publishing": publishing, "folder": folder}


def _split(line: str) -> List[str]:
    """Cells of a fixed-width table line (cells are two or more spaces apart)."""
    return re.split(r" {2,}", line.strip())


def _section(text: str, title: str) -> List[str]:
    """The lines of the table under the section whose title starts with `title`."""
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if lines[0].startswith(title):
            return lines[1:]
    raise AssertionError(f"no section {title!r} in:\n{text}")


def test_terminal_report_agrees_with_the_raw_tables(history: Dict[str, Any]) -> None:
    db: Path = history["db"]
    text = report.terminal_report(db, days=3, changes=10)
    lines = text.splitlines()

    run_id, as_of = query(db, "select run_id, max(as_of) from workspace_images.project_runs "
                              "group by run_id order by 2 desc limit 1")[0]
    assert lines[0] == f"workspace-images report: {db}"
    assert lines[1] == f"last load: as of 2026-11-04 12:00:00Z, run {run_id[:12]}: 2/3 projects ok, 1 failed"
    failing = history["failing"]
    assert lines[2].startswith(f"  failed {failing.region}:{failing.project_id}: HTTP 403 APIG.0302: ")
    current, stale = query(db, "select count(*), count(*) filter (where project_id = ?) "
                               "from workspace_images.images where _dlt_valid_to is null", [failing.project_id])[0]
    assert lines[3] == (f"current images: {current:,} in 3 projects, 3 regions; "
                        f"stale (latest run failed): 1 project, {stale:,} images")

    # inventory: current versions in the raw SCD2 table, by region and os_type
    counts = dict(((r, o), n) for r, o, n in query(
        db, "select region, os_type, count(*) from workspace_images.images where _dlt_valid_to is null group by all"))
    os_types = sorted({o for _, o in counts})
    regions = sorted({r for r, _ in counts})
    table = _section(text, "Inventory by region and OS type")
    assert _split(table[0]) == ["region", *os_types, "total"]
    assert set(table[1]) == {"-", " "}
    expected = [[r, *[f"{counts.get((r, o), 0):,}" for o in os_types], f"{sum(counts.get((r, o), 0) for o in os_types):,}"]
                for r in regions]
    expected.append(["total", *[f"{sum(counts.get((r, o), 0) for r in regions):,}" for o in os_types], f"{current:,}"])
    assert [_split(line) for line in table[2:]] == expected

    # trend: images valid at the end of each of the last 3 days, per os_version, from the raw table
    trend = _section(text, "OS-version trend")
    assert _split(trend[0]) == ["os_type", "os_version", "11-02", "11-03", "11-04", "change"]
    raw = query(db, """
        select os_type, os_version, d.day::date,
            count(*) filter (where valid_from::date <= d.day and coalesce(valid_to::date > d.day, true))
        from (select os_type, os_version, _dlt_valid_from at time zone 'UTC' as valid_from,
                     _dlt_valid_to at time zone 'UTC' as valid_to from workspace_images.images) as i
        cross join (select unnest(generate_series(date '2026-11-02', date '2026-11-04', interval 1 day)) as day) as d
        group by all order by 1, 2, 3""")
    per_version: Dict[Tuple[str, str], List[int]] = {}
    for os_type, os_version, _, n in raw:
        per_version.setdefault((os_type, os_version), []).append(n)
    rows = [[o, v, *[f"{n:,}" for n in ns], f"{ns[-1] - ns[0]:+,}" if ns[-1] != ns[0] else "0"]
            for (o, v), ns in sorted(per_version.items()) if any(ns)]
    totals = [sum(ns[i] for ns in per_version.values()) for i in range(3)]
    assert [_split(line) for line in trend[2:-1]] == rows
    assert _split(trend[-1]) == ["total", *[f"{n:,}" for n in totals], f"{totals[-1] - totals[0]:+,}"]

    # latest changes: the newest first, the escaped-looking name printed as it is
    changes = _section(text, "Latest 10 changes")
    assert _split(changes[0]) == ["changed_at", "change", "region", "project", "image_name", "os_version",
                                  "changed_columns"]
    assert len(changes) == 2 + 10
    assert all(line.startswith("2026-11-04 12:00Z  ") for line in changes[2:])
    published = [line for line in changes if TRICKY_NAME in line]
    assert len(published) == 1 and _split(published[0])[1:4] == [
        "added", history["publishing"].region, history["publishing"].project_id[:8]]
    assert not any(line != line.rstrip() for line in lines)


def test_export_writes_every_analytics_table(history: Dict[str, Any], tmp_path: Path) -> None:
    db: Path = history["db"]
    tables = [r[0] for r in query(db, "select table_name from information_schema.tables "
                                      "where table_schema = 'analytics' order by table_name")]
    assert {"stg_images", "image_inventory", "inventory_summary", "os_version_trend", "image_changes"} <= set(tables)
    rows = {t: query(db, f"select count(*) from analytics.{t}")[0][0] for t in tables}

    written = report.export(db, tmp_path / "csv" / "nested", "csv")
    assert written == [tmp_path / "csv" / "nested" / f"{t}.csv" for t in tables]
    for table, path in zip(tables, written):
        with path.open(newline="", encoding="utf-8") as f:
            records = list(csv.reader(f))
        columns = [r[0] for r in query(db, "select column_name from information_schema.columns where "
                                           "table_schema = 'analytics' and table_name = ? order by ordinal_position",
                                       [table])]
        assert records[0] == columns, table
        assert len(records) - 1 == rows[table], table
    assert TRICKY_NAME in (tmp_path / "csv" / "nested" / "image_changes.csv").read_text(encoding="utf-8")
    # the lines DuckDB's own COPY writes, sorted by every column, with a ' before a text that a
    # spreadsheet would run as a formula (starting with = + - @, a tab or a CR)
    (tmp_path / "copy").mkdir()
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        for table, path in zip(tables, written):
            kinds = con.execute("select column_name, data_type from information_schema.columns where "
                                "table_schema = 'analytics' and table_name = ? order by ordinal_position",
                                [table]).fetchall()
            cells = ", ".join(
                f"case when left({c}, 1) in ('=', '+', '-', '@', chr(9), chr(13)) then '''' || {c} else {c} end "
                f"as {c}" if kind == "VARCHAR" else c
                for c, kind in ((f'"{name}"', kind) for name, kind in kinds)
            )
            con.execute(f"copy (select {cells} from analytics.{table}) to '{tmp_path / 'copy' / path.name}' "
                        "(format csv, header true)")
            ours = path.read_text(encoding="utf-8").splitlines()
            lines = (tmp_path / "copy" / path.name).read_text(encoding="utf-8").splitlines()
            assert ours[0] == lines[0] and sorted(ours[1:]) == sorted(lines[1:]), table

    written = report.export(db, tmp_path / "parquet", "parquet")
    assert [p.name for p in written] == [f"{t}.parquet" for t in tables]
    with duckdb.connect() as con:
        for table, path in zip(tables, written):
            assert con.execute("select count(*) from read_parquet(?)", [str(path)]).fetchone()[0] == rows[table]
        names = con.execute("select image_name from read_parquet(?) where change = 'added'",
                            [str(tmp_path / "parquet" / "image_changes.parquet")]).fetchall()
    assert (TRICKY_NAME,) in names

    with pytest.raises(UsageError, match="use csv or parquet"):
        report.export(db, tmp_path / "x", "xlsx")


# -- the page in a real browser ---------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run the tests with `make test`, which installs Debian's chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: run the tests with `make test`, which installs the test extra")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def _open(browser: Any, html: Path, width: int = 1280) -> Tuple[Any, List[str], List[str]]:
    """Open `html` over file://, recording every request and every console error."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests: List[str] = []
    errors: List[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html.resolve().as_uri(), wait_until="load")
    return page, requests, errors


def _png_size(data: bytes) -> Tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_html_page_renders_offline_with_charts_and_escaped_names(
    history: Dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    db: Path = history["db"]
    html = report.write_html(db, tmp_path / "page" / "report.html")
    assert html == tmp_path / "page" / "report.html"
    source = html.read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in source
    assert "Content-Security-Policy" in source and "<script" not in source
    assert not re.search(r"(src|href)=\"(https?:)?//", source)

    page, requests, errors = _open(browser, html)
    assert requests and all(url == html.resolve().as_uri() or url.startswith("data:") for url in requests), requests
    assert errors == []

    for name in FIGURES:
        figure = page.locator(f'figure[data-chart="{name}"]')
        assert figure.count() == 1, name
        assert figure.locator("figcaption").inner_text().strip(), name
        marks = figure.locator("svg .mark")
        assert marks.count() > 0, name
        assert figure.locator("svg .mark > title").count() == marks.count(), name
        box = marks.first.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, name
    series = query(db, "select count(distinct (os_type, os_version)) from analytics.os_version_trend where images > 0")
    assert page.locator('[data-chart="os_version_trend"] .mark').count() == series[0][0]
    assert page.locator('[data-chart="os_version_trend"] .legend li').count() == series[0][0]
    regions = query(db, "select count(distinct region) from analytics.image_inventory")[0][0]
    assert page.locator('[data-chart="inventory_by_region"] .mark').count() == regions

    kpis = page.locator(".kpi").all_inner_texts()
    current = query(db, "select count(*) from analytics.image_inventory")[0][0]
    assert any(k.startswith("IMAGES\n") and f"{current:,}" in k for k in (t.upper() for t in kpis)), kpis
    assert any("STALE PROJECTS\n1\n" in k.upper() for k in kpis), kpis

    changes = page.locator('table[data-table="changes"]')
    names = [r[0] for r in query(db, "select image_name from analytics.image_changes "
                                     "order by changed_at desc, region, project_id, change, image_name, image_id "
                                     f"limit {report.HTML_CHANGES}")]
    chinese = next(n for n in names if n and CJK.search(n))
    assert chinese in changes.inner_text()
    assert TRICKY_NAME in changes.inner_text()  # shown as text, not markup
    assert changes.locator("b").count() == 0
    assert changes.locator("tbody tr").count() == report.HTML_CHANGES
    failing = history["failing"]
    assert "APIG.0302" in page.locator(f'table[data-table="projects"] tr:has-text("{failing.project_id}")').inner_text()

    shot = tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    width, height = _png_size(data)
    assert width == 1280 and height > 1500 and len(data) > 50_000
    page.close()

    narrow, _, errors = _open(browser, html, width=420)
    assert errors == []
    assert narrow.evaluate("document.querySelector('svg.chart').getBoundingClientRect().width") <= 420
    narrow.close()


def test_html_page_of_a_first_day_shows_empty_states(browser: Any, sim: Simulator, db: Path, tmp_path: Path) -> None:
    sim.add_project("cn-north-4", images=5)
    load(db, sim, day=0)
    html = report.write_html(db, tmp_path / "first.html")
    page, requests, errors = _open(browser, html)
    assert errors == [] and all(u == html.resolve().as_uri() or u.startswith("data:") for u in requests)
    trend = page.locator('[data-chart="os_version_trend"] .mark')
    assert trend.count() > 0 and trend.first.bounding_box()["height"] > 0  # one day: one stacked column
    empty = page.locator('[data-chart="changes_per_day"]')
    assert empty.locator(".mark").count() == 0
    assert "No changes since the first load" in empty.inner_text()
    assert page.locator('table[data-table="changes"] tbody tr').count() == 5  # the first load's additions
    page.close()

    text = report.terminal_report(db, days=7, changes=3)
    assert _section(text, "OS-version trend")[0].split()[-2:] == ["11-01", "change"]
    assert "Latest 3 changes" in text


def test_screenshot_with_chromium_is_a_full_page_png(history: Dict[str, Any], tmp_path: Path) -> None:
    assert report.find_chromium(), "no chromium on PATH: `make test` installs it"
    html = report.write_html(history["db"], tmp_path / "r.html")
    png = report.screenshot(html, tmp_path / "shots" / "r.png")
    assert png == tmp_path / "shots" / "r.png"
    width, height = _png_size(png.read_bytes())
    assert width == 1280 and height > 1500


def test_screenshot_from_inside_an_asyncio_loop(history: Dict[str, Any], tmp_path: Path) -> None:
    # as from a notebook, whose cell runs inside an event loop, which Playwright's sync API refuses
    html = report.write_html(history["db"], tmp_path / "r.html")

    async def in_a_loop() -> Optional[Path]:
        return report.screenshot(html, tmp_path / "r.png")

    # a thread of its own for the loop: this module's browser fixture keeps Playwright's loop in the main one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        png = pool.submit(asyncio.run, in_a_loop()).result()
    assert png == tmp_path / "r.png"
    assert _png_size(png.read_bytes())[0] == 1280


def test_screenshot_without_chromium_warns_and_returns_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    records: List[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("workspace_images").addHandler(handler)
    try:
        assert report.screenshot(tmp_path / "r.html", tmp_path / "r.png") is None
    finally:
        logging.getLogger("workspace_images").removeHandler(handler)
    assert not (tmp_path / "r.png").exists()
    assert any(r.levelno == logging.WARNING and "apt-get install chromium" in r.getMessage() for r in records)


def test_screenshot_reports_a_browser_that_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "chromium"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    (tmp_path / "r.html").write_text("<!doctype html><title>x</title>", encoding="utf-8")
    with pytest.raises(report.ScreenshotFailed) as failed:
        report.screenshot(tmp_path / "r.html", tmp_path / "r.png")
    # one line: the browser, the step that failed, and what the browser said on stderr
    assert str(failed.value) == (
        f"{fake}: BrowserType.launch: Target page, context or browser has been closed (cannot open display)")
    assert not (tmp_path / "r.png").exists()


def test_screenshot_without_playwright_warns_and_returns_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)  # what `import` sees when it is not installed
    with caplog.at_level(logging.WARNING, logger="workspace_images"):
        assert report.screenshot(tmp_path / "r.html", tmp_path / "r.png") is None
    assert not (tmp_path / "r.png").exists()
    assert [r.getMessage() for r in caplog.records] == [
        f"playwright is not installed, so no screenshot of {tmp_path / 'r.html'}: "
        "install it with `pip install 'workspace-images[screenshot]'`"]


# -- exact layout on a database written by hand ----------------------------------------------------

HAND_MADE = """
create schema workspace_images;
create schema analytics;
create table workspace_images.project_runs as select * from (values
    ('1111111111111111aaaa', 'p1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'cn-north-4', timestamptz '2026-03-01 06:00:00+00',
     timestamptz '2026-03-01 06:00:01+00', timestamptz '2026-03-01 06:00:02+00', 'ok', null, null, null),
    ('1111111111111111aaaa', 'p2bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'ap-southeast-1', timestamptz '2026-03-01 06:00:00+00',
     timestamptz '2026-03-01 06:00:01+00', timestamptz '2026-03-01 06:00:02+00', 'ok', null, null, null),
    ('2222222222222222bbbb', 'p1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'cn-north-4', timestamptz '2026-03-02 06:00:00+00',
     timestamptz '2026-03-02 06:00:01+00', timestamptz '2026-03-02 06:00:02+00', 'ok', null, null, null),
    ('2222222222222222bbbb', 'p2bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'ap-southeast-1', timestamptz '2026-03-02 06:00:00+00',
     timestamptz '2026-03-02 06:00:01+00', timestamptz '2026-03-02 06:00:02+00', 'failed', 403, 'APIG.0302',
     'Forbidden: <no> & no')
) as t(run_id, project_id, region, as_of, started_at, finished_at, status, http_status, error_code, error_msg);
create view analytics.stg_project_runs as select * from workspace_images.project_runs;
create table analytics.image_inventory as
    select 'p1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' as project_id, 'cn-north-4' as region, false as is_stale from range(3)
    union all
    select 'p2bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'ap-southeast-1', true from range(1200);
create table analytics.project_status as select * from (values
    ('cn-north-4', 'p1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'ok', timestamptz '2026-03-02 06:00:00+00', null, null, null,
     timestamptz '2026-03-02 06:00:00+00', false, 3),
    ('ap-southeast-1', 'p2bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'failed', timestamptz '2026-03-02 06:00:00+00', 403,
     'APIG.0302', 'Forbidden: <no> & no', timestamptz '2026-03-01 06:00:00+00', true, 1200)
) as t(region, project_id, latest_status, latest_as_of, http_status, error_code, error_msg, last_ok_at, is_stale,
       current_images);
create table analytics.inventory_summary as select * from (values
    ('cn-north-4', 'p1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'Linux', 'gold', 'x86', 2, 0),
    ('cn-north-4', 'p1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'Windows', 'gold', 'x86', 1, 0),
    ('ap-southeast-1', 'p2bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'Windows', 'private', 'arm', 1200, 1200)
) as t(region, project_id, os_type, image_type, architecture, images, stale_images);
create table analytics.os_version_trend as select * from (values
    (date '2026-03-01', 'Linux', 'EulerOS 2.9 64bit', 1, 1, null),
    (date '2026-03-02', 'Linux', 'EulerOS 2.9 64bit', 2, 1, 1),
    (date '2026-03-01', 'Linux', 'CentOS 7.6 64bit', 1, 1, null),
    (date '2026-03-02', 'Linux', 'CentOS 7.6 64bit', 0, 0, -1),
    (date '2026-03-01', 'Linux', 'Kylin V10 SP1 64bit', 0, 0, null),
    (date '2026-03-02', 'Linux', 'Kylin V10 SP1 64bit', 0, 0, 0),
    (date '2026-03-01', 'Windows', 'Windows 11 Enterprise 64bit', 1004, 2, null),
    (date '2026-03-02', 'Windows', 'Windows 11 Enterprise 64bit', 1201, 2, 197)
) as t(day, os_type, os_version, images, projects, images_change);
create table analytics.image_changes as select * from (values
    (timestamptz '2026-03-02 06:00:00+00', 'p1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'i3', 'added', null,
     'cn-north-4', 'EulerOS_欧拉_研发_001', 'EulerOS 2.9 64bit'),
    (timestamptz '2026-03-02 06:00:00+00', 'p1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'i4', 'removed', null,
     'cn-north-4', 'CentOS <beta> & co', 'CentOS 7.6 64bit'),
    (timestamptz '2026-03-02 06:00:00+00', 'p1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'i1', 'changed', 'min_disk, name',
     'cn-north-4', 'Windows11_企业版_テスト_とても長い名前の画像です_012345', 'Windows 11 Enterprise 64bit'),
    (timestamptz '2026-03-01 06:00:00+00', 'p1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'i1', 'added', null,
     'cn-north-4', 'Windows11_企业版', 'Windows 11 Enterprise 64bit')
) as t(changed_at, project_id, image_id, change, changed_columns, region, image_name, os_version);
"""

EXPECTED = """\
workspace-images report: {db}
last load: as of 2026-03-02 06:00:00Z, run 222222222222: 1/2 projects ok, 1 failed
  failed ap-southeast-1:p2bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb: HTTP 403 APIG.0302: Forbidden: <no> & no
current images: 1,203 in 2 projects, 2 regions; stale (latest run failed): 1 project, 1,200 images

Inventory by region and OS type (current images)
region          Linux  Windows  total
--------------  -----  -------  -----
ap-southeast-1      0    1,200  1,200
cn-north-4          2        1      3
total               2    1,201  1,203

OS-version trend: images at the end of each day, 2026-03-01 to 2026-03-02
os_type  os_version                   03-01  03-02  change
-------  ---------------------------  -----  -----  ------
Linux    CentOS 7.6 64bit                 1      0      -1
Linux    EulerOS 2.9 64bit                1      2      +1
Windows  Windows 11 Enterprise 64bit  1,004  1,201    +197
total                                 1,006  1,203    +197

Latest 3 changes
changed_at         change   region      project   image_name                               os_version                   changed_columns
-----------------  -------  ----------  --------  ---------------------------------------  ---------------------------  ---------------
2026-03-02 06:00Z  added    cn-north-4  p1aaaaaa  EulerOS_欧拉_研发_001                    EulerOS 2.9 64bit
2026-03-02 06:00Z  changed  cn-north-4  p1aaaaaa  Windows11_企业版_テスト_とても長い名前…  Windows 11 Enterprise 64bit  min_disk, name
2026-03-02 06:00Z  removed  cn-north-4  p1aaaaaa  CentOS <beta> & co                       CentOS 7.6 64bit"""


@pytest.fixture
def hand_made(tmp_path: Path) -> Path:
    db = tmp_path / "hand.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(HAND_MADE)
    return db


def test_terminal_report_exact_layout(hand_made: Path) -> None:
    assert report.terminal_report(hand_made, days=7, changes=3) == EXPECTED.format(db=hand_made)


def test_terminal_report_window_and_no_changes_section(hand_made: Path) -> None:
    text = report.terminal_report(hand_made, days=1, changes=0)
    assert _section(text, "OS-version trend") == [
        "os_type  os_version                   03-02  change",
        "-------  ---------------------------  -----  ------",
        "Linux    EulerOS 2.9 64bit                2       0",
        "Windows  Windows 11 Enterprise 64bit  1,201       0",
        "total                                 1,203       0",
    ]
    assert "changes" not in text.split("\n\n")[-1]


def test_html_of_a_hand_made_database_escapes_every_value(hand_made: Path, tmp_path: Path) -> None:
    page = report.write_html(hand_made, tmp_path / "hand.html").read_text(encoding="utf-8")
    assert "CentOS &lt;beta&gt; &amp; co" in page and "<beta>" not in page
    assert "Forbidden: &lt;no&gt; &amp; no" in page
    assert "Windows11_企业版_テスト_とても長い名前の画像です_012345" in page  # not cut in HTML


def test_reports_need_the_models(tmp_path: Path) -> None:
    raw = tmp_path / "raw.duckdb"
    with duckdb.connect(str(raw)) as con:
        con.execute("create schema workspace_images; create table workspace_images.project_runs (run_id text)")
    for call in (lambda: report.terminal_report(raw), lambda: report.write_html(raw, tmp_path / "x.html"),
                 lambda: report.export(raw, tmp_path / "out", "csv")):
        with pytest.raises(UsageError, match=r"run `workspace-images models --db .*raw.duckdb` first"):
            call()
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="does not exist"):
        report.terminal_report(tmp_path / "missing.duckdb")
    assert not (tmp_path / "missing.duckdb").exists()


# -- charts -------------------------------------------------------------------------------------


def test_nice_ticks_are_round_and_cover_the_maximum() -> None:
    assert charts.nice_ticks(1592) == [0, 250, 500, 750, 1000, 1250, 1500, 1750]
    assert charts.nice_ticks(142) == [0, 25, 50, 75, 100, 125, 150]
    assert charts.nice_ticks(2) == [0, 1, 2]
    assert charts.nice_ticks(0) == [0, 1]


def test_charts_escape_labels_and_draw_empty_states() -> None:
    svg = charts.horizontal_bars([("<x> & y", 3), ("z", 0)], title="t & u")
    assert "&lt;x&gt; &amp; y" in svg and "<x>" not in svg and "<title>t &amp; u</title>" in svg
    assert svg.count('class="mark bar"') == 2
    for empty in (charts.horizontal_bars([], title="t", empty_message="none here"),
                  charts.stacked_area([], [], title="t", empty_message="none here"),
                  charts.stacked_bars(["a"], [charts.Series("s", [0], "#000")], title="t", empty_message="none here")):
        assert "none here" in empty and 'class="mark' not in empty
    area = charts.stacked_area(["d1", "d2"], [charts.Series("a", [1, 2], "#111"), charts.Series("b", [3, 0], "#222")],
                               title="t")
    assert area.count('class="mark area"') == 2 and "d1: 4 images" in area
