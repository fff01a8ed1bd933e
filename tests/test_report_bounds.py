"""The HTML page stays small whatever the values: long values cut with the whole in a tooltip,
charts with the largest series and one "other"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

import duckdb
import pytest

from workspace_images.pipelines.reporting import charts
from workspace_images.simulator import Simulator
from workspace_images.safe_text import add_secrets
from tests.helpers import TOKEN, cli, load, query

MB = 1_000_000
PAGE_BOUND = 200_000
"""Bytes the page stays under in these tests (the values in them add up to over 20 MB)."""
TOP = 20
"""Series a chart shows before the rest are summed into "other"."""


@pytest.fixture
def loaded(sim: Simulator, db: Path) -> Path:
    """A database of one project of 30 images, its models built."""
    sim.add_project("cn-north-4", images=30)
    load(db, sim, day=0)
    return db


def _page(db: Path) -> str:
    done = cli(["report", "--db", db.name, "--html", "page.html"], cwd=db.parent)
    assert done.returncode == 0, done.stderr
    page = db.parent / "page.html"
    assert page.stat().st_size < PAGE_BOUND
    return page.read_text(encoding="utf-8")


def _figure(page: str, name: str) -> str:
    found = re.search(rf'<figure data-chart="{name}">(.*?)</figure>', page, re.S)
    assert found, name
    return found.group(1)


def _legend(figure: str) -> List[str]:
    """The text of each legend entry, tags left out."""
    found = re.search(r'<ul class="legend">(.*?)</ul>', figure, re.S)
    assert found
    return [re.sub(r"<[^>]*>", "", item) for item in re.findall(r"<li>(.*?)</li>", found.group(1))]


def test_long_values_are_cut_with_the_whole_in_a_title(loaded: Path) -> None:
    names = [f"name-{i:02d}-<&>-" + "x" * MB for i in range(20)]
    with duckdb.connect(str(loaded)) as con:
        ids = [r[0] for r in con.execute(
            "select image_id from analytics.image_changes order by image_id limit 20").fetchall()]
        for image_id, name in zip(ids, names):
            con.execute("update analytics.image_changes set image_name = ? where image_id = ?", [name, image_id])
        con.execute("update analytics.os_version_trend set os_version = ?, images = 7 "
                    "where os_version = (select min(os_version) from analytics.os_version_trend)", ["OS " + "y" * MB])
        con.execute("update analytics.project_status set latest_status = 'failed', http_status = 500, "
                    "error_code = 'X.1', error_msg = ?", ["z" * MB])

    page = _page(loaded)

    for name in names:
        shown = name[:119].replace("<&>", "&lt;&amp;&gt;") + "…"
        whole = name[:1999].replace("<&>", "&lt;&amp;&gt;") + "…"
        assert f'<span title="{whole}">{shown}</span>' in page
    assert "<&>" not in page
    legend = _legend(_figure(page, "os_version_trend"))
    assert [entry for entry in legend if entry.startswith("OS y")] == ["OS " + "y" * 116 + "… 7 (0)"]
    assert "y" * 2000 not in page
    assert f'<span title="HTTP 500 X.1: {"z" * 1985}…">HTTP 500 X.1: {"z" * 105}…</span>' in page


def test_charts_show_the_largest_series_and_one_other(loaded: Path) -> None:
    versions = [f"OS {i:04d}" for i in range(2000)]
    with duckdb.connect(str(loaded)) as con:
        day = con.execute("select max(day) from analytics.os_version_trend").fetchone()[0]
        con.executemany("insert into analytics.os_version_trend (day, os_type, os_version, images) values (?, ?, ?, ?)",
                        [(day, "Linux", v, 5000 - i // 2) for i, v in enumerate(versions)])
        con.executemany("insert into analytics.inventory_summary (region, project_id, os_type, image_type, "
                        "architecture, images, stale_images) values ('cn-north-4', 'p', ?, 'private', 'x86', ?, 0)",
                        [(v, 5000 - i // 2) for i, v in enumerate(versions)])
    series = query(loaded, "select count(distinct (os_type, os_version)) from analytics.os_version_trend "
                           "where images > 0")[0][0]
    os_types = query(loaded, "select count(distinct os_type) from analytics.inventory_summary")[0][0]
    top = TOP

    page = _page(loaded)

    trend = _figure(page, "os_version_trend")
    legend = _legend(trend)
    # the largest, ties broken by name, then the rest summed
    assert [entry.split(" ")[0] + " " + entry.split(" ")[1] for entry in legend[:-1]] == versions[:top]
    rest = sum(5000 - i // 2 for i in range(top, 2000)) + 30
    assert legend[-1] == f"other ({series - top:,} more) {rest:,} (0)"
    assert trend.count('class="mark area"') == top + 1
    by_os_type = _figure(page, "inventory_by_os_type")
    assert by_os_type.count('class="mark bar"') == top + 1
    labels = re.findall(r'<text class="label"[^>]*>([^<]*)</text>', by_os_type)
    assert labels == versions[:top] + [f"other ({os_types - top:,} more)"]
    assert f"{os_types:,} values" in by_os_type


def test_a_cut_never_leaves_part_of_a_secret() -> None:
    add_secrets(TOKEN)
    # 146 characters as given, 116 once the token is redacted: shown whole, not cut inside the token
    assert charts.shown("<" * 110 + TOKEN) == "&lt;" * 110 + "******"
    assert charts.cut("y" * 200 + TOKEN, 206) == "y" * 200 + "******"
    assert charts.cut("y" * 200 + TOKEN, 205) == "y" * 200 + "****…"
