"""Five simulated days loaded into a DuckDB file and into PostgreSQL by the real runner, and
PostgreSQL read back: the history test_postgres compares across the two databases and
test_report_destinations reports from."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import psycopg2

from workspace_images.pipelines.runner import run
from workspace_images.simulator import Simulator
from tests.helpers import TOKEN

DAYS = 5

WALL_CLOCK = {"fetched_at", "run_id", "latest_run_id", "started_at", "finished_at", "_dlt_load_id", "_dlt_id"}
"""Columns that differ between the two loads of one day by nature: when and by which run."""


def pg_query(url: str, sql: str) -> Tuple[List[str], List[tuple]]:
    with psycopg2.connect(url) as con, con.cursor() as cur:
        cur.execute("set time zone 'UTC'")
        cur.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()


def load_both(sim: Simulator, db: Path, tmp_path: Path, day: int) -> None:
    projects = [f"{p.region}:{p.project_id}" for p in sim.projects]
    for destination in ("duckdb", "postgres"):
        run(db if destination == "duckdb" else None, destination=destination, projects=projects, endpoint=sim.url,
            token=TOKEN, as_of=sim.as_of(day), pipelines_dir=tmp_path / f"pipelines-{destination}")


def load_five_days(sim: Simulator, db: Path, tmp_path: Path) -> None:
    """Five simulated days of `sim` (three projects) loaded into the DuckDB file `db` and into
    PostgreSQL by the real runner: images come and go, one gets a field the API never sent
    before and one an odd value, and on the last day one project fails."""
    first, second, failing = (p.project_id for p in sim.projects)
    for day in range(DAYS):
        sim.set_day(day)
        if day == 1:
            image = sim.images(first)[0]["id"]
            sim.modify(first, image, release_channel="beta")
        if day == 2:
            sim.modify(second, sim.images(second)[1]["id"], min_ram="lots")
        if day == 3:
            sim.publish(first, {"os_version": "hce2.0", "name": "桌面 ½"})
        if day == DAYS - 1:
            sim.fail_project(failing, "status", status=500, error_code="WKS.0500", error_msg="Internal error")
        load_both(sim, db, tmp_path, day)
