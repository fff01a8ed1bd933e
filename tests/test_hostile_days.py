"""A hostile day in one project stays that project's failure, and the next ordinary run heals by
itself: ids that collide once typed, thousands of new fields, a package the database refuses."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path
from typing import Any, Callable, List

import pytest

from workspace_images.simulator import Simulator
from workspace_images.settings import DEFAULT_MAX_NEW_FIELDS
from tests.helpers import cli, current_ids, kill_at, one_line, query, run_args


GIB = 1024 * 1024 * 1024
SMALL_DUCKDB = {"DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG": '{"memory_limit": "16MB"}'}
"""DuckDB held to 16 MB: a day of 14 one-MB descriptions is more than its load can hold."""


def history(db: Path) -> List[tuple]:
    """Every version of every image, without the columns that differ between identical loads."""
    return query(db, "select project_id, id, _row_hash, _dlt_valid_from, _dlt_valid_to, raw_values "
                     "from workspace_images.images order by all")


def runs(db: Path, as_of: Any) -> List[tuple]:
    return query(db, "select region, status, error_code, error_msg from workspace_images.project_runs "
                     "where as_of = ? order by region", [as_of])


def failed_lines(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if line.startswith("failed: ")]


def two_projects(sim: Simulator, images: int = 150) -> tuple:
    return sim.add_project("cn-north-4", images=images), sim.add_project("cn-east-3", images=images - 30)


def hostile_day_against_a_reference(
    sim: Simulator, tmp_path: Path, spoil: Callable[[str], None]
) -> subprocess.CompletedProcess:
    """Day 0 with `spoil` done to the second project, into `x.duckdb`; the same day into `ref.duckdb`
    with that project failing plainly (HTTP 403); day 1 (the simulator's own data again), into both.
    Returns day 0's run of `x.duckdb`; asserts that day 1 exits 0 with the models built and both
    histories equal."""
    good, bad = two_projects(sim)
    spoil(bad.project_id)
    day0 = cli(run_args(sim, "x.duckdb", 0), tmp_path)
    sim.fail_project(bad.project_id, "status", status=403)
    assert cli(run_args(sim, "ref.duckdb", 0), tmp_path).returncode == 1
    sim.clear_faults()
    sim.set_day(1)
    for name in ("x.duckdb", "ref.duckdb"):
        again = cli(run_args(sim, name, 1), tmp_path)
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr
    db, ref = tmp_path / "x.duckdb", tmp_path / "ref.duckdb"
    assert history(db) == history(ref)
    for project in (good, bad):
        assert current_ids(db, project.project_id) == sorted(i["id"] for i in sim.images(project.project_id))
    assert query(db, "select count(*) from analytics.image_inventory") == [(len(sim.images(good.project_id))
                                                                            + len(sim.images(bad.project_id)),)]
    return day0


def test_ids_that_are_one_once_typed_fail_their_project_alone(sim: Simulator, tmp_path: Path) -> None:
    def spoil(project_id: str) -> None:
        sim.publish(project_id, {"id": 12345})
        sim.publish(project_id, {"id": "12345"})

    day0 = hostile_day_against_a_reference(sim, tmp_path, spoil)
    assert day0.returncode == 1, day0.stderr
    good, bad = sim.projects
    message = ("images 12345 and '12345' have one id once loaded as text ('12345'): "
               "the project's rows would collide")
    assert failed_lines(day0.stderr) == [f"failed: cn-east-3:{bad.project_id}: HTTP 200 WI.DUPLICATE_ID: {message}"]
    assert runs(tmp_path / "x.duckdb", sim.as_of(0)) == [
        ("cn-east-3", "failed", "WI.DUPLICATE_ID", message), ("cn-north-4", "ok", None, None)]


@pytest.mark.parametrize("kind, size, code", [
    ("gzip_bomb", GIB, "WI.ANSWER_TOO_LARGE"),
    ("oversized_page", 5000, "WI.MALFORMED_RESPONSE"),
])
def test_a_bomb_or_an_oversized_page_leaves_the_history_a_plain_failure_would(
    sim: Simulator, tmp_path: Path, kind: str, size: int, code: str
) -> None:
    day0 = hostile_day_against_a_reference(sim, tmp_path, lambda project_id: sim.fail_project(project_id, kind, size=size))
    assert day0.returncode == 1, day0.stderr
    assert [line.split(": ")[2].split(" ")[2] for line in failed_lines(day0.stderr)] == [code]


def test_5000_new_fields_load_200_columns_and_keep_the_rest_in_raw_values(sim: Simulator, tmp_path: Path) -> None:
    good, bad = two_projects(sim)
    wide = sim.publish(bad.project_id, {"id": "wide", **{f"field_{i:04d}": i for i in range(5000)}})
    proc = cli(run_args(sim, "x.duckdb", 0), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (f"WARNING project cn-east-3:{bad.project_id}: 4800 new field(s) past max_new_fields "
            f"({DEFAULT_MAX_NEW_FIELDS} columns for new fields) got no column, e.g. 'field_0200'; "
            "their values are kept in raw_values") in proc.stderr
    db = tmp_path / "x.duckdb"
    columns = [name for (name,) in query(db, "select column_name from information_schema.columns "
                                             "where table_schema = 'workspace_images' and table_name = 'images' "
                                             "and column_name like 'field_%' order by 1")]
    assert columns == [f"field_{i:04d}" for i in range(200)]
    (row,) = query(db, "select field_0000, field_0199, raw_values from workspace_images.images where id = 'wide'")
    assert row[:2] == (0, 199)
    assert row[2] == "{" + ", ".join(f'"field_{i:04d}": {i}' for i in range(200, 5000)) + "}"
    sim.set_day(1)
    sim.publish(bad.project_id, wide)
    again = cli(run_args(sim, "x.duckdb", 1), tmp_path)
    assert again.returncode == 0, again.stderr
    assert "4800 new field(s) past max_new_fields" in again.stderr  # the same image, the same fields kept raw: no new version
    assert query(db, "select count(*) from workspace_images.images where id = 'wide'") == [(1,)]
    for project in (good, bad):
        assert current_ids(db, project.project_id) == sorted(i["id"] for i in sim.images(project.project_id))
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child process yet
    assert peak_kib < GIB // 1024, f"a CLI run peaked at {peak_kib} KiB"


@pytest.mark.parametrize("value, message", [
    ("-1", "max_new_fields must be a whole number of columns from 0 to 1000, got -1"),
    ("1001", "max_new_fields must be a whole number of columns from 0 to 1000, got 1001"),
])
def test_max_new_fields_out_of_range_exits_2(sim: Simulator, tmp_path: Path, value: str, message: str) -> None:
    sim.add_project("cn-north-4", images=5)
    proc = cli(run_args(sim), tmp_path, extra_env={"SOURCES__WORKSPACE_IMAGES__MAX_NEW_FIELDS": value})
    assert proc.returncode == 2, proc.stderr
    assert one_line(proc.stderr) == f"workspace-images: error: {message}"


def test_max_new_fields_0_keeps_every_new_field_in_raw_values(sim: Simulator, tmp_path: Path) -> None:
    project = sim.add_project("cn-north-4", images=3)
    sim.publish(project.project_id, {"id": "odd", "colour": "blue"})
    proc = cli(run_args(sim), tmp_path, extra_env={"SOURCES__WORKSPACE_IMAGES__MAX_NEW_FIELDS": "0"})
    assert proc.returncode == 0, proc.stderr
    assert query(tmp_path / "x.duckdb", "select raw_values from workspace_images.images where id = 'odd'") == [
        ('{"colour": "blue"}',)]


# -- a package the database refuses for its content ------------------------------------------


def publish_large(sim: Simulator, project_id: str) -> None:
    for k in range(14):
        sim.publish(project_id, {"id": f"large-{k}", "description": f"{k}" + "x" * 1_000_000})


def set_aside_folders(tmp_path: Path) -> List[Path]:
    return sorted((tmp_path / ".workspace_images" / "x.duckdb" / "set_aside").iterdir())


def pending_packages(tmp_path: Path) -> List[Path]:
    load = tmp_path / ".workspace_images" / "x.duckdb" / "workspace_images" / "load"
    return sorted(load.glob("normalized/*")) + sorted(load.glob("new/*"))


REFUSED = ("the database refused this run's data, so the project's images are as they were; set aside in {folder}: "
           "Out of Memory Error: ")


def test_a_package_the_database_refuses_is_set_aside_and_the_next_run_loads(sim: Simulator, tmp_path: Path) -> None:
    good, bad = two_projects(sim)
    db = tmp_path / "x.duckdb"
    assert cli(run_args(sim, "x.duckdb", 0), tmp_path).returncode == 0
    before = history(db)
    sim.set_day(1)
    publish_large(sim, bad.project_id)
    proc = cli(run_args(sim, "x.duckdb", 1), tmp_path, extra_env=SMALL_DUCKDB)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    (folder,) = set_aside_folders(tmp_path)
    reason = (folder / "reason.txt").read_text(encoding="utf-8").splitlines()
    assert reason[0] == f"load package {folder.name} was refused by the database for its content and set aside:"
    assert reason[1].startswith("Out of Memory Error: ")
    assert {p.name.split(".")[0] for p in (folder / "failed_jobs").iterdir()} == {"images"}
    expected = REFUSED.format(folder=folder)
    rows = runs(db, sim.as_of(1))
    assert [row[:3] for row in rows] == [("cn-east-3", "failed", "WI.LOAD_REFUSED"),
                                        ("cn-north-4", "failed", "WI.LOAD_REFUSED")]
    assert all(row[3].startswith(expected) for row in rows), rows
    assert [line.split(": WI.LOAD_REFUSED: ")[1].startswith(expected) for line in failed_lines(proc.stderr)] == [
        True, True]
    assert history(db) == before
    assert pending_packages(tmp_path) == []
    # the next ordinary run (the simulator's own data again): no hand repair
    sim.set_day(2)
    again = cli(run_args(sim, "x.duckdb", 2), tmp_path)
    assert again.returncode == 0, again.stderr
    for project in (good, bad):
        assert current_ids(db, project.project_id) == sorted(i["id"] for i in sim.images(project.project_id))
    assert query(db, "select count(*) from analytics.stg_project_runs where error_code = 'WI.LOAD_REFUSED'") == [(2,)]


def test_an_earlier_run_s_package_the_database_refuses_is_set_aside_and_the_run_goes_on(
    sim: Simulator, tmp_path: Path
) -> None:
    good, bad = two_projects(sim, images=40)  # a day small enough for DuckDB's 16 MB
    db = tmp_path / "x.duckdb"
    assert cli(run_args(sim, "x.duckdb", 0), tmp_path).returncode == 0
    before = history(db)
    sim.set_day(1)
    publish_large(sim, bad.project_id)
    kill_at("load", run_args(sim, "x.duckdb", 1), tmp_path)
    assert len(pending_packages(tmp_path)) == 1
    sim.set_day(2)
    proc = cli(run_args(sim, "x.duckdb", 2), tmp_path, extra_env=SMALL_DUCKDB)
    assert proc.returncode == 0, proc.stderr
    (folder,) = set_aside_folders(tmp_path)
    assert (f"load package {folder.name} was refused by the database for its content (Out of Memory Error: "
            in proc.stderr)
    assert [row[:3] for row in runs(db, sim.as_of(1))] == [("cn-east-3", "failed", "WI.LOAD_REFUSED"),
                                                           ("cn-north-4", "failed", "WI.LOAD_REFUSED")]
    assert [row[:3] for row in runs(db, sim.as_of(2))] == [("cn-east-3", "ok", None), ("cn-north-4", "ok", None)]
    for project in (good, bad):
        assert current_ids(db, project.project_id) == sorted(i["id"] for i in sim.images(project.project_id))
    assert [row for row in history(db) if row[3] == sim.as_of(1)] == []
    assert [row[:4] for row in history(db) if row[3] == sim.as_of(0)] == [row[:4] for row in before]


def test_a_load_job_the_database_refuses_for_good_is_set_aside(sim: Simulator, tmp_path: Path) -> None:
    """A terminal refusal (dlt fails the job): a column someone added by hand as BIGINT, which the
    API then sends as text. Each such run is set aside and says why; once the column is dropped,
    the next run loads."""
    import duckdb

    good, bad = two_projects(sim, images=40)
    db = tmp_path / "x.duckdb"
    assert cli(run_args(sim, "x.duckdb", 0), tmp_path).returncode == 0
    with duckdb.connect(str(db)) as con:
        con.execute("alter table x.workspace_images.images add column colour bigint")
    before = history(db)
    sim.set_day(1)
    sim.publish(bad.project_id, {"id": "blue", "colour": "blue"})
    proc = cli(run_args(sim, "x.duckdb", 1), tmp_path)
    assert proc.returncode == 1, proc.stderr
    (folder,) = set_aside_folders(tmp_path)
    rows = runs(db, sim.as_of(1))
    assert [row[:3] for row in rows] == [("cn-east-3", "failed", "WI.LOAD_REFUSED"),
                                        ("cn-north-4", "failed", "WI.LOAD_REFUSED")]
    prefix = ("the database refused this run's data, so the project's images are as they were; "
              f"set aside in {folder}: Conversion Error: Could not convert string 'blue' to INT64")
    assert all(row[3].startswith(prefix) for row in rows), rows
    assert history(db) == before and pending_packages(tmp_path) == []
    with duckdb.connect(str(db)) as con:
        con.execute("alter table x.workspace_images.images drop column colour")
    sim.set_day(2)
    sim.publish(bad.project_id, {"id": "blue", "colour": "blue"})
    again = cli(run_args(sim, "x.duckdb", 2), tmp_path)
    assert again.returncode == 0, again.stderr
    assert query(db, "select colour from workspace_images.images where id = 'blue'") == [("blue",)]
    for project in (good, bad):
        assert current_ids(db, project.project_id) == sorted(i["id"] for i in sim.images(project.project_id))
